"""Golden vectors: what the PyTorch FP32 reference saw and produced, stored as `.npz`.

Layout inside a bundle:
  golden/<program>.npz   one key per input `in_<name>` and output `out_<name>`, each stacked
                         over the recorded calls: shape [N, *tensor_shape] for N calls
                         (e.g. every denoiser step of the first window). Only calls whose
                         shapes match the first recorded call are kept, so stacking is exact.
  golden/pipeline.npz    `image` [H,W,3] float32 in [0,1], `audio` [S] float32 at the
                         spec's sample rate, `frames` [T,H,W,3] the reference video,
                         `noise.<name>` every noise tensor the sampler drew (by name, so
                         RecordedNoise replays them), `extra.<key>` the driver's extras
                         (e.g. `extra.motion` [T,D]).

`.npz` files are written deterministically (fixed zip timestamps, sorted keys), so a
bundle exported twice from the same checkpoint hashes the same.
"""
from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from edgeth.errors import BundleError

ProgramCall = Callable[[str, list], list]
_EPOCH = (1980, 1, 1, 0, 0, 0)


def save_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """np.savez_compressed-compatible, but byte-identical for identical arrays."""
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    return path


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read every array (never unpickles); a damaged file is a BundleError."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as e:
        raise BundleError(f"cannot read golden vectors {path}: {e}", "re-export the bundle") from None


class GoldenRecorder:
    """Wraps a ProgramCall and keeps the first `max_calls` calls of every program.

    Use it as the `call` of a pipeline driver while the PyTorch reference runs.
    """

    def __init__(self, call: ProgramCall, max_calls: int = 8):
        self.inner = call
        self.max_calls = max_calls
        self.calls: dict[str, list[tuple[list[np.ndarray], list[np.ndarray]]]] = {}
        self.counts: dict[str, int] = {}

    def __call__(self, program: str, inputs: list) -> list:
        outputs = self.inner(program, inputs)
        self.counts[program] = self.counts.get(program, 0) + 1
        kept = self.calls.setdefault(program, [])
        if len(kept) < self.max_calls:
            ins = [np.array(x, copy=True) for x in inputs]
            outs = [np.array(y, copy=True) for y in outputs]
            if not kept or _shapes(kept[0]) == _shapes((ins, outs)):
                kept.append((ins, outs))
        return outputs


def _shapes(call: tuple[list[np.ndarray], list[np.ndarray]]) -> tuple:
    return tuple(a.shape for a in call[0]), tuple(a.shape for a in call[1])


def program_arrays(input_names: list[str], output_names: list[str],
                   calls: list[tuple[list[np.ndarray], list[np.ndarray]]]) -> dict[str, np.ndarray]:
    """Stack recorded calls into the `in_<name>` / `out_<name>` layout."""
    if not calls:
        return {}
    out: dict[str, np.ndarray] = {}
    for i, n in enumerate(input_names):
        out[f"in_{n}"] = np.stack([c[0][i] for c in calls])
    for i, n in enumerate(output_names):
        out[f"out_{n}"] = np.stack([c[1][i] for c in calls])
    return out


def program_calls(arrays: dict[str, np.ndarray], input_names: list[str],
                  output_names: list[str]) -> list[tuple[list[np.ndarray], list[np.ndarray]]]:
    """Inverse of program_arrays: [(inputs, outputs)] per recorded call."""
    missing = [k for k in [f"in_{n}" for n in input_names] + [f"out_{n}" for n in output_names] if k not in arrays]
    if missing:
        raise BundleError(f"golden vectors lack {', '.join(missing)}", "re-export the bundle")
    n = arrays[f"out_{output_names[0]}"].shape[0] if output_names else 0
    return [([arrays[f"in_{k}"][i] for k in input_names], [arrays[f"out_{k}"][i] for k in output_names])
            for i in range(n)]


def pipeline_arrays(image: np.ndarray, audio: np.ndarray, frames: np.ndarray,
                    noise: dict[str, np.ndarray], extras: dict, stages: list[str] | None = None) -> dict[str, np.ndarray]:
    """The golden pipeline record: inputs, video, named noise and the stages (the spec's declared
    stages; every array-valued extra for specs that declare none)."""
    out = {"image": np.asarray(image, np.float32), "audio": np.asarray(audio, np.float32),
           "frames": np.asarray(frames, np.float32)}
    for k, v in noise.items():
        out[f"noise.{k}"] = np.asarray(v)
    for k, v in extras.items():
        if stages is not None and k not in stages:
            continue
        if isinstance(v, np.ndarray) and v.dtype != object:
            out[f"extra.{k}"] = v
    return out


def split_pipeline(arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(noise by name, extras by name) from a pipeline.npz."""
    noise = {k[len("noise."):]: v for k, v in arrays.items() if k.startswith("noise.")}
    extras = {k[len("extra."):]: v for k, v in arrays.items() if k.startswith("extra.")}
    return noise, extras
