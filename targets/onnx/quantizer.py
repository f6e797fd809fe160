"""ONNX Runtime quantization: post-processing of the checked FP32 .onnx (see exporter.py).

`apply(program, fp32_path, plan, dest) -> report` writes the converted model to dest:

  int8 / mixed   QDQ INT8 (edgeth.quantize.onnx_qdq): onnxruntime quantize_static, s8
                 activations and weights, symmetric, zero-point 0, per-channel weights,
                 float bias; calibrated on the plan's captured pipeline inputs; nodes of
                 plan.float_layers / program.float_only excluded. Every Q/DQ node is
                 checked (the same model is TensorRT's input).
  int8-weights   dynamic INT8 (onnxruntime quantize_dynamic: MatMul/Gemm weights INT8,
                 activations quantized at run time): for linear-heavy programs
  fp16           edgeth's own FP16 conversion (edgeth.quantize.onnx_fp16), I/O kept FP32
                 unless plan.io_fp16; layers the FP16 audit finds overflowing stay FP32
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from edgeth.quantize.targets_common import base_report, calibration, float_layers, require

SUPPORTED = ("fp32", "fp16", "int8", "int8-weights", "mixed")


def apply(program: Any, fp32_path: Path, plan: Any, dest: Path) -> dict[str, Any]:
    precision = require(plan, "onnx", SUPPORTED)
    if precision == "fp32":
        Path(dest).write_bytes(Path(fp32_path).read_bytes())
        return {}
    if precision == "fp16":
        return fp16(program, fp32_path, plan, dest)
    if precision == "int8-weights":
        return dynamic_int8(program, fp32_path, plan, dest)
    return qdq_int8(program, fp32_path, plan, dest)


def qdq_int8(program: Any, src: Path, plan: Any, dest: Path) -> dict[str, Any]:
    """The QDQ INT8 model (shared with TensorRT); returns the report."""
    import onnx

    from edgeth.quantize.onnx_qdq import nodes_for_layers, qdq_summary, quantize_qdq

    from edgeth.errors import InputError

    fl = float_layers(program, plan)
    missing = [e for e in plan.float_layers if not nodes_for_layers(onnx.load(str(src)), [e])]
    if missing:
        raise InputError(f"float layer(s) {', '.join(missing)} match no node of {program.name}'s ONNX graph",
                         "use module paths or node names from the mixed-precision plan")
    samples, source = calibration(program, plan)
    rep = quantize_qdq(src, dest, samples, float_layers=fl)
    return base_report(program, plan, "INT8 QDQ s8s8 symmetric (zero-point 0), per-channel weights, float bias",
                       source, **rep, summary=qdq_summary(dest))


def dynamic_int8(program: Any, src: Path, plan: Any, dest: Path) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from edgeth.quantize.onnx_qdq import quiet_root_logger

    import onnx

    with tempfile.TemporaryDirectory() as td, quiet_root_logger():
        # the exporter's value_info trips quantize_dynamic's shape inference (Gemm weights): re-infer
        model = onnx.load(str(src))
        del model.graph.value_info[:]
        bare, tmp = Path(td) / "bare.onnx", Path(td) / "d.onnx"
        onnx.save(model, str(bare))
        quantize_dynamic(str(bare), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Gemm"])
        os.replace(tmp, dest)

    ops = [n.op_type for n in onnx.load(str(dest)).graph.node]
    return base_report(program, plan, "INT8 dynamic (ORT): MatMul/Gemm weights INT8, activations at run time",
                       matmul_integer=ops.count("MatMulInteger"), dynamic_quantize=ops.count("DynamicQuantizeLinear"),
                       note="convolutions stay FP32 (ORT's ConvInteger is slower than FP32 on CPU)")


def fp16(program: Any, src: Path, plan: Any, dest: Path) -> dict[str, Any]:
    import onnx

    from edgeth.quantize.fp16_audit import audit_fp16
    from edgeth.quantize.onnx_fp16 import convert_fp16
    from edgeth.quantize.onnx_qdq import nodes_for_layers

    samples, source = calibration(program, plan)
    audit = audit_fp16(program, samples)
    keep_modules = audit.overflow_modules()
    keep = nodes_for_layers(onnx.load(str(src)), keep_modules)
    _, rep = convert_fp16(src, dest, keep_io_types=not plan.io_fp16, keep_fp32=keep)
    return base_report(program, plan, "FP16 weights and compute" + ("" if plan.io_fp16 else ", FP32 inputs/outputs"),
                       source, **rep, fp16_audit=audit.to_json(), kept_fp32_modules=keep_modules)
