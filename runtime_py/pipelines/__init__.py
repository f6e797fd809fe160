"""Pipeline drivers: host code that chains programs per a PipelineSpec.

A driver is backend-agnostic: it only calls `call(program_name, inputs) -> outputs`
with numpy arrays. The PyTorch reference (`edgeth generate`), every exported backend
(`edgeth run`) and golden-vector capture all go through the same driver, so they sample
the same trajectory when given the same noise.

Register a driver with @register_pipeline("kind"); PipelineSpec.kind selects it.

Streaming: a driver may carry a `stream` attribute, a generator function with the driver's
signature but `chunks` (an iterable of audio arrays arriving over time) instead of `audio`,
that yields FrameChunks as soon as frames are final and returns the PipelineResult (frames
None). motion_diffusion's offline driver is `collect(stream(..., chunks=[audio]))`: one loop.
A driver without `stream` is streamed by `stream_driver` the plain way: every chunk is
gathered, the driver runs offline, then all frames are yielded at once (no lower latency).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generator, Iterable, Protocol

import numpy as np

from edgeth.registry import Registry

from edgeth.runtime_py.pipelines.host import (  # noqa: F401 (the drivers' shared host code)
    NoiseSource, ProgramCall, RecordedNoise, SeededNoise)


@dataclass
class PipelineResult:
    frames: np.ndarray  # [T, H, W, 3] float32 in [0, 1]
    fps: int
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. motion [T, D], tokens


@dataclass
class FrameChunk:
    """Frames [n, H, W, 3] in [0, 1], final, starting at frame `start` of the video."""
    start: int
    frames: np.ndarray


FrameGenerator = Generator[FrameChunk, None, PipelineResult]


class Driver(Protocol):
    def __call__(self, spec: Any, call: ProgramCall, *, image: np.ndarray, audio: np.ndarray,
                 noise: NoiseSource, progress: bool = False, **options: Any) -> PipelineResult: ...


PIPELINES: Registry[Driver] = Registry("pipeline kind", builtins=("edgeth.runtime_py.pipelines.motion_diffusion",))


def register_pipeline(kind: str):
    return PIPELINES.register(kind)


def get_pipeline(kind: str) -> Driver:
    """The driver for `kind`: the shared drivers here, or one a model family registers from its
    own folder (families are loaded first, so a new family needs no edit here)."""
    from edgeth.models import model_names

    model_names()  # imports the registered families, which register their own drivers
    return PIPELINES.get(kind)


def stream_driver(driver: Driver):
    """driver.stream, or the offline fallback (gather every chunk, run, yield all frames)."""
    own = getattr(driver, "stream", None)
    if own is not None:
        return own

    def offline(spec: Any, call: ProgramCall, *, image: np.ndarray, chunks: Iterable[np.ndarray], noise: NoiseSource,
                progress: bool = False, **options: Any) -> FrameGenerator:
        parts = [np.asarray(c, dtype=np.float32).reshape(-1) for c in chunks]
        audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        res = driver(spec, call, image=image, audio=audio, noise=noise, progress=progress, **options)
        yield FrameChunk(0, res.frames)
        return PipelineResult(frames=None, fps=res.fps, extras=res.extras)  # type: ignore[arg-type]

    return offline


def collect(frames: FrameGenerator) -> PipelineResult:
    """Run a streaming driver to the end: its result with every frame [T, H, W, 3] in order."""
    got: list[np.ndarray] = []
    while True:
        try:
            chunk = next(frames)
        except StopIteration as stop:
            res: PipelineResult = stop.value
            break
        got.append(chunk.frames)
    return PipelineResult(frames=np.concatenate(got), fps=res.fps, extras=res.extras)
