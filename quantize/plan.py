"""PrecisionPlan: what a target's exporter is asked to produce for one program.

precision:
  fp32          no quantization (plan may be None)
  fp16          half-precision compute (I/O stays fp32 unless io_fp16)
  int8          static INT8: per-channel symmetric weights, per-tensor activations, calibrated
  int8-weights  weight-only INT8 (dynamic activations where the target supports it)
  mixed         int8 except `float_layers`, chosen under an accuracy budget
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PRECISIONS = ("fp32", "fp16", "int8", "int8-weights", "mixed")


@dataclass(frozen=True)
class PrecisionPlan:
    precision: str = "fp32"
    float_layers: tuple[str, ...] = ()  # graph node / module names that stay float
    budget: dict[str, float] | None = None  # e.g. {"psnr": 35} for mixed
    io_fp16: bool = False
    # Calibration inputs: list of input tuples (numpy arrays, the program's input order).
    calibration: tuple[tuple[Any, ...], ...] = field(default=(), compare=False, repr=False)
    notes: dict[str, Any] = field(default_factory=dict, compare=False)  # why layers stayed float, etc.

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            from edgeth.errors import EdgethError

            raise EdgethError(f"unknown precision {self.precision!r}", f"choose one of: {', '.join(PRECISIONS)}")

    def to_json(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "float_layers": list(self.float_layers),
            "budget": self.budget,
            "io_fp16": self.io_fp16,
            "calibration_samples": len(self.calibration),
            "notes": self.notes,
        }
