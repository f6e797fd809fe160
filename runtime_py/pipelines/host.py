"""Host code every pipeline driver shares (pure numpy; no torch, no model, no backend).

  prepare_image(image, size)            portrait [H,W,3] in [0,1] -> [1,3,S,S] float32
  read_wave(audio)                      checked mono float32 samples
  AudioBuffer(chunks)                   audio arriving in chunks: pulled only when a window needs it
  plan_windows(n, T, O)                 start frame of each overlapping window
  crossfade(prev, new, blend)           blend the last B overlap frames (weights (j+1)/(B+1))
  Timed(call)                           a ProgramCall that records seconds and calls per program
  render_batched(call, program, ...)    per-frame program on fixed batches (last one padded)
  progress_bar(progress, total, desc)   a tqdm bar or None
  SeededNoise / RecordedNoise           named noise: normal, uniform and integer draws, recorded
                                        by name so every backend replays the same trajectory

A driver is then a short file that says what is specific to its paper (see
motion_diffusion.py). Shape legend: T window, O overlap, B blend, N render batch, S image size.
"""
from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Any, Callable, Protocol

import numpy as np

from edgeth.errors import InputError

# call(program, [inputs...]) -> [outputs...]; numpy in, numpy out, in the program's order.
ProgramCall = Callable[[str, list[np.ndarray]], list[np.ndarray]]


# -- inputs --------------------------------------------------------------------------------
def prepare_image(image: np.ndarray, size: int) -> np.ndarray:
    """[H, W, 3] float in [0, 1] (any size) -> [1, 3, S, S] float32 (bilinear resize if needed)."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] not in (3, 4) or min(img.shape[:2]) < 2:
        raise InputError(f"image must be [H, W, 3] RGB, got shape {img.shape}", "pass an RGB portrait")
    img = img[..., :3].astype(np.float32)
    if not np.isfinite(img).all():
        raise InputError("image has NaN/inf values", "pass a valid image in [0, 1]")
    img = np.clip(img, 0.0, 1.0)
    if img.shape[:2] != (size, size):
        from PIL import Image

        pil = Image.fromarray((img * 255 + 0.5).astype(np.uint8)).resize((size, size), Image.BILINEAR)
        img = np.asarray(pil, dtype=np.float32) / 255.0
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None])


def read_wave(audio: np.ndarray) -> np.ndarray:
    """Mono float32 samples; empty or non-finite audio is an InputError."""
    wave = np.asarray(audio, dtype=np.float32).reshape(-1)
    if wave.size == 0 or not np.isfinite(wave).all():
        raise InputError("audio is empty or has NaN/inf samples", "pass a 16 kHz mono waveform")
    return wave


class AudioBuffer:
    """Speech that arrives as an iterable of chunks (one array = offline). `fill(n)` pulls chunks
    until n samples have arrived or the source ends; `read(a, b)` is samples [a, b), zero-padded
    past the end, so a window read here equals the same window of the whole padded wave;
    `release(a)` forgets samples before a (a long stream keeps only what windows still need)."""

    def __init__(self, chunks: Any):
        self._source = iter([chunks] if isinstance(chunks, np.ndarray) else chunks)
        self._data = np.zeros(0, np.float32)
        self._offset = 0  # sample index of _data[0]
        self.received = 0
        self.ended = False

    def fill(self, need: int) -> bool:
        while not self.ended and self.received < need:
            try:
                chunk = next(self._source)
            except StopIteration:
                self.ended = True
                break
            chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
            if chunk.size and not np.isfinite(chunk).all():
                raise InputError("audio has NaN/inf samples", "pass a 16 kHz mono waveform")
            self._data = np.concatenate([self._data, chunk])
            self.received += chunk.size
        if self.ended and self.received == 0:
            raise InputError("audio is empty", "pass a 16 kHz mono waveform")
        return self.received >= need

    def read(self, a: int, b: int) -> np.ndarray:
        out = np.zeros(b - a, np.float32)
        got = self._data[a - self._offset:b - self._offset]
        out[:got.size] = got
        return out

    def release(self, a: int) -> None:
        if a > self._offset:
            self._data = self._data[a - self._offset:]
            self._offset = a


def samples_per_frame(spec: Any) -> int:
    return int(spec.audio.get("samples_per_frame", spec.audio.get("sample_rate", 16000) // spec.fps))


# -- windows -------------------------------------------------------------------------------
def plan_windows(n_frames: int, window: int, overlap: int) -> list[int]:
    """Start frame of every window; window w >= 1 re-generates O frames of window w-1."""
    stride = window - overlap
    if stride <= 0:
        raise InputError(f"window {window} with overlap {overlap} never advances", "use overlap < window")
    return [w * stride for w in range(1 + max(0, math.ceil((n_frames - window) / stride)))]


def crossfade(prev: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Cross-fade B frames (axis 0) from `prev` to `new`: weight (j+1)/(B+1) on frame j of `new`."""
    b = prev.shape[0]
    a = (np.arange(1, b + 1, dtype=np.float32) / (b + 1)).reshape((b,) + (1,) * (prev.ndim - 1))
    return (1 - a) * prev + a * new


# -- program calls -------------------------------------------------------------------------
class Timed:
    """Wraps a ProgramCall; `timings_s` and `calls` per program go into the result's extras."""

    def __init__(self, call: ProgramCall):
        self.call = call
        self.timings_s: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def __call__(self, name: str, xs: list[np.ndarray]) -> list[np.ndarray]:
        t0 = time.perf_counter()
        out = self.call(name, xs)
        self.timings_s[name] += time.perf_counter() - t0
        self.calls[name] += 1
        return out

    def extras(self) -> dict[str, Any]:
        return {"timings_s": dict(self.timings_s), "calls": dict(self.calls)}


def render_batched(call: ProgramCall, program: str, fixed: list[np.ndarray], per_frame: np.ndarray, batch: int,
                   size: int, bar: Any = None) -> np.ndarray:
    """Frames [N, S, S, 3] from a per-frame program called on fixed batches of `batch` rows of
    `per_frame` (the last batch padded by repeating its last row), after the `fixed` inputs."""
    n = per_frame.shape[0]
    frames = np.zeros((n, size, size, 3), dtype=np.float32)
    for b in range(0, n, batch):
        m = per_frame[b:b + batch]
        pad = np.concatenate([m, np.repeat(m[-1:], batch - len(m), 0)]) if len(m) < batch else m
        out = call(program, [*fixed, np.ascontiguousarray(pad)])[0]
        frames[b:b + len(m)] = out[: len(m)].transpose(0, 2, 3, 1)
        if bar is not None:
            bar.update(1)
    return frames


def progress_bar(progress: bool, total: int, desc: str = "generate"):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, dynamic_ncols=True)


# -- noise ---------------------------------------------------------------------------------
class NoiseSource(Protocol):
    def normal(self, name: str, shape: tuple[int, ...]) -> np.ndarray: ...

    def uniform(self, name: str, shape: tuple[int, ...]) -> np.ndarray: ...

    def integers(self, name: str, high: int, shape: tuple[int, ...]) -> np.ndarray: ...


class SeededNoise:
    """Draws from one numpy Generator in call order and records every draw by name:
    float32 N(0,1) (`normal`), float32 U[0,1) (`uniform`), int64 in [0, high) (`integers`)."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.drawn: dict[str, np.ndarray] = {}

    def _keep(self, name: str, a: np.ndarray) -> np.ndarray:
        self.drawn[name] = a
        return a

    def normal(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        return self._keep(name, self.rng.standard_normal(shape).astype(np.float32))

    def uniform(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        return self._keep(name, self.rng.random(shape, dtype=np.float32))

    def integers(self, name: str, high: int, shape: tuple[int, ...]) -> np.ndarray:
        return self._keep(name, self.rng.integers(0, int(high), size=shape, dtype=np.int64))


class RecordedNoise:
    """Replays noise by name (e.g. the bundle's golden noise), so every backend samples alike."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays

    def _get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        from edgeth.errors import BundleError

        if name not in self.arrays:
            raise BundleError(f"recorded noise has no tensor {name!r}", "re-export the bundle with this pipeline length")
        a = self.arrays[name]
        if tuple(a.shape) != tuple(shape):
            raise BundleError(f"recorded noise {name!r} has shape {a.shape}, pipeline asks {shape}", "re-export the bundle")
        return a

    def normal(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        return self._get(name, shape)

    def uniform(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        return self._get(name, shape)

    def integers(self, name: str, high: int, shape: tuple[int, ...]) -> np.ndarray:
        a = self._get(name, shape)
        if a.size and (a.min() < 0 or a.max() >= high):
            from edgeth.errors import BundleError

            raise BundleError(f"recorded noise {name!r} holds values outside [0, {high})", "re-export the bundle")
        return a
