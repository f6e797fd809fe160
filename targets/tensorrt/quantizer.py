"""TensorRT quantization: after the FP32 ONNX is written (see exporter.py).

`apply(program, onnx_path, plan) -> (trtexec flags, report)`:

  fp16           the FP32 ONNX unchanged + `--fp16` (TensorRT picks FP16 kernels per layer,
                 I/O stays FP32)
  int8 / mixed   onnx_path rewritten in place as the QDQ INT8 model of the onnx target
                 (signed INT8, zero-point 0 on every Q/DQ node - the only INT8 shape
                 TensorRT accepts - per-channel weights, float bias) + `--int8`; layers left
                 float by a mixed plan have no Q/DQ and run FP32 (no `--fp16`: the budget
                 was met with them in FP32)
  int8-weights   refused: TensorRT has no dynamic activation quantization; use int8
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from edgeth.quantize.targets_common import require

SUPPORTED = ("fp32", "fp16", "int8", "mixed")


def apply(program: Any, onnx_path: Path, plan: Any) -> tuple[list[str], dict[str, Any]]:
    precision = require(plan, "tensorrt", SUPPORTED)
    if precision == "fp32":
        return [], {}
    if precision == "fp16":
        return ["--fp16"], {"precision": "fp16", "scheme": "TensorRT FP16 kernels (--fp16), ONNX stays FP32"}
    from edgeth.targets.onnx.quantizer import qdq_int8

    onnx_path = Path(onnx_path)
    with tempfile.TemporaryDirectory(prefix=".edgeth-trt-", dir=onnx_path.parent) as td:
        tmp = Path(td) / onnx_path.name
        report = qdq_int8(program, onnx_path, plan, tmp)
        os.replace(tmp, onnx_path)
    return ["--int8"], report
