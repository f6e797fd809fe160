"""Pipeline drivers: host code that chains programs per a PipelineSpec.

A driver is backend-agnostic: it only calls `call(program_name, inputs) -> outputs`
with numpy arrays. The PyTorch reference (`edgeth generate`), every exported backend
(`edgeth run`) and golden-vector capture all go through the same driver, so they sample
the same trajectory when given the same noise.

Register a driver with @register_pipeline("kind"); PipelineSpec.kind selects it.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from edgeth.registry import Registry

# call(program, [inputs...]) -> [outputs...]; numpy in, numpy out, in the program's order.
ProgramCall = Callable[[str, list[np.ndarray]], list[np.ndarray]]


class NoiseSource(Protocol):
    def normal(self, name: str, shape: tuple[int, ...]) -> np.ndarray: ...


class SeededNoise:
    """Draws float32 N(0,1) from one numpy Generator in call order, and records what it drew."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.drawn: dict[str, np.ndarray] = {}

    def normal(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        a = self.rng.standard_normal(shape).astype(np.float32)
        self.drawn[name] = a
        return a


class RecordedNoise:
    """Replays noise by name (e.g. the bundle's golden noise), so every backend samples alike."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays

    def normal(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        from edgeth.errors import BundleError

        if name not in self.arrays:
            raise BundleError(f"recorded noise has no tensor {name!r}", "re-export the bundle with this pipeline length")
        a = self.arrays[name]
        if tuple(a.shape) != tuple(shape):
            raise BundleError(f"recorded noise {name!r} has shape {a.shape}, pipeline asks {shape}", "re-export the bundle")
        return a


@dataclass
class PipelineResult:
    frames: np.ndarray  # [T, H, W, 3] float32 in [0, 1]
    fps: int
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. motion [T, D], tokens


class Driver(Protocol):
    def __call__(self, spec: Any, call: ProgramCall, *, image: np.ndarray, audio: np.ndarray,
                 noise: NoiseSource, progress: bool = False, **options: Any) -> PipelineResult: ...


PIPELINES: Registry[Driver] = Registry("pipeline kind")
_BUILTIN: tuple[str, ...] = ("edgeth.runtime_py.pipelines.motion_diffusion",)


def register_pipeline(kind: str):
    return PIPELINES.register(kind)


def get_pipeline(kind: str) -> Driver:
    for mod in _BUILTIN:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # a driver not written yet
            if e.name != mod:
                raise
    return PIPELINES.get(kind)
