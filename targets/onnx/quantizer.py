"""ONNX Runtime quantization hook (filled by the quantization work).

Stage: post-processing of the checked FP32 .onnx (see exporter.py). `apply(program,
fp32_path, plan, dest)` writes the converted model to dest: int8 as QDQ with
onnxruntime.quantization.quantize_static (QuantFormat.QDQ, QInt8 activations and weights,
symmetric, per-channel; s8s8 is also what TensorRT accepts), calibrated on
plan.calibration, nodes of plan.float_layers excluded; fp16 by a float16 conversion that
keeps I/O in float32 unless plan.io_fp16.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeth.errors import EdgethError


def apply(program: Any, fp32_path: Path, plan: Any, dest: Path) -> None:
    precision = getattr(plan, "precision", "fp32")
    if precision == "fp32":
        Path(dest).write_bytes(Path(fp32_path).read_bytes())
        return
    raise EdgethError(f"precision {precision} for target onnx arrives with the quantization work",
                      "export with --precision fp32 for now")
