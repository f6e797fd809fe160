"""Pipeline drivers: host code that chains programs per a PipelineSpec.

A driver is backend-agnostic: it only calls `call(program_name, inputs) -> outputs`
with numpy arrays. The PyTorch reference (`edgeth generate`), every exported backend
(`edgeth run`) and golden-vector capture all go through the same driver, so they sample
the same trajectory when given the same noise.

Register a driver with @register_pipeline("kind"); PipelineSpec.kind selects it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from edgeth.registry import Registry

from edgeth.runtime_py.pipelines.host import (  # noqa: F401 (the drivers' shared host code)
    NoiseSource, ProgramCall, RecordedNoise, SeededNoise)


@dataclass
class PipelineResult:
    frames: np.ndarray  # [T, H, W, 3] float32 in [0, 1]
    fps: int
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. motion [T, D], tokens


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
