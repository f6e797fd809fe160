"""TensorRT quantization hook (filled by the quantization work).

Stage: after the FP32 ONNX is written (see exporter.py). `apply(program, onnx_path, plan)`
rewrites onnx_path in place when the precision needs a QDQ model and returns the trtexec
precision flags for the recipe: fp16 -> ["--fp16"] (model unchanged); int8 -> an ONNX QDQ
model with signed INT8 and zero-point 0 (onnxruntime quantize_static, QInt8/QInt8,
symmetric, per-channel weights) + ["--int8"] (+ "--fp16" for layers left float in mixed).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeth.errors import EdgethError


def apply(program: Any, onnx_path: Path, plan: Any) -> list[str]:
    precision = getattr(plan, "precision", "fp32")
    if precision == "fp32":
        return []
    raise EdgethError(f"precision {precision} for target tensorrt arrives with the quantization work",
                      "export with --precision fp32 for now")
