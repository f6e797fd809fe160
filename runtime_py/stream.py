"""Streaming: speech that arrives in chunks in, frames out as soon as they are final.

What a device app copies: feed the microphone's chunks to the pipeline's streaming driver
(edgeth.runtime_py.pipelines.stream_driver) and show each frame when it comes out.

  Pipeline(bundle, backend).stream(image, chunks) -> FrameStream
  FrameStream               iterator of frames [S, S, 3] float32 in [0, 1], in order; once it is
                            exhausted, `.result` holds the driver's extras (motion, timings) and
                            `.events` when each chunk was pulled and each frame came out
  split_audio(audio, n)     an array as chunks of n samples (the last one shorter)
  wav_chunks(path, ms, sr)  a wav read progressively (memory-mapped), `ms` milliseconds a chunk

Events are (kind, index, t_start, t_end, samples) with perf_counter seconds: kind "chunk" spans
the wait for chunk `index` (`samples` long), kind "frame" marks frame `index` leaving the
stream (t_start == t_end). edgeth.bench.stream turns them into latency figures.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from edgeth.errors import InputError


class FrameStream:
    def __init__(self, start: Any, chunks: Iterable[np.ndarray]):
        """start(chunks) -> the driver's frame generator; chunks are timed as they are pulled."""
        self.events: list[tuple[str, int, float, float, int]] = []
        self.t0 = time.perf_counter()
        self.result: Any = None
        self.frames_out = 0
        self._gen = start(self._timed(chunks))
        self._pending: list[np.ndarray] = []

    def _timed(self, chunks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        it = iter([chunks] if isinstance(chunks, np.ndarray) else chunks)
        k = 0
        while True:
            t = time.perf_counter()
            try:
                c = np.asarray(next(it), dtype=np.float32).reshape(-1)
            except StopIteration:
                return
            self.events.append(("chunk", k, t, time.perf_counter(), int(c.size)))
            k += 1
            yield c

    def __iter__(self) -> "FrameStream":
        return self

    def __next__(self) -> np.ndarray:
        while not self._pending:
            try:
                self._pending = list(next(self._gen).frames)
            except StopIteration as stop:
                self.result = stop.value
                raise
        t = time.perf_counter()
        self.events.append(("frame", self.frames_out, t, t, 0))
        self.frames_out += 1
        return self._pending.pop(0)


def split_audio(audio: np.ndarray, chunk: int) -> list[np.ndarray]:
    a = np.asarray(audio, dtype=np.float32).reshape(-1)
    if chunk < 1:
        raise InputError(f"chunk of {chunk} samples", "pass a chunk length of at least 1 ms")
    return [a[i:i + chunk] for i in range(0, a.size, chunk)]


def wav_chunks(path: Path, chunk_ms: float, sample_rate: int) -> Iterator[np.ndarray]:
    """A PCM/float wav at `sample_rate`, read progressively: mono float32 chunks of chunk_ms.
    (Resampling per chunk would not give the offline run's samples, so other rates are refused.)"""
    from scipy.io import wavfile

    from edgeth.data.video import pcm_to_float

    path = Path(path)
    if path.suffix.lower() != ".wav" or not path.is_file():
        raise InputError(f"--stream reads a .wav file, got {path}", "pass an existing .wav, or run without --stream")
    try:
        sr, data = wavfile.read(str(path), mmap=True)
    except Exception as e:
        raise InputError(f"cannot read wav {path}: {type(e).__name__}: {e}", "pass a PCM .wav") from None
    if int(sr) != int(sample_rate):
        raise InputError(f"{path} is at {sr} Hz; streaming reads {sample_rate} Hz as it arrives",
                         f"resample it to {sample_rate} Hz (e.g. ffmpeg -i in.wav -ar {sample_rate} out.wav), "
                         "or run without --stream")
    if data.shape[0] == 0:
        raise InputError(f"{path} holds no audio samples", "pass a non-empty recording")
    n = max(1, int(round(chunk_ms * sample_rate / 1000)))
    for i in range(0, data.shape[0], n):
        a = pcm_to_float(np.array(data[i:i + n]))
        yield a.mean(axis=1) if a.ndim == 2 else a
