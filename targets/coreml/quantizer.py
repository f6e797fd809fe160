"""Core ML quantization hook (filled by the quantization work).

Stage: after ct.convert (see exporter.py). `apply(program, mlmodel, plan)` returns the
ct.models.MLModel to save: fp16 -> re-convert with compute_precision FLOAT16 (outputs stay
pinned FP32); int8-weights -> ct.optimize.coreml.linear_quantize_weights (works on Linux);
int8 W8A8 -> convert an XNNPACK-PT2E-quantized ExportedProgram (CoreMLQuantizer does not
import under torch 2.13, and linear_quantize_activations needs predict(), i.e. macOS).
"""
from __future__ import annotations

from typing import Any

from edgeth.errors import EdgethError


def apply(program: Any, mlmodel: Any, plan: Any) -> Any:
    precision = getattr(plan, "precision", "fp32")
    if precision == "fp32":
        return mlmodel
    raise EdgethError(f"precision {precision} for target coreml arrives with the quantization work",
                      "export with --precision fp32 for now")
