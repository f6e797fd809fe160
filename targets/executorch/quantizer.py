"""ExecuTorch quantization: between torch.export and XNNPACK lowering (see exporter.py).

`apply(program, ep, plan) -> (ExportedProgram, report)`; the exporter lowers the result
like an FP32 program and puts the report under the artifact's "quantization".

  int8 / mixed   static INT8 through PT2E: the XNNPACK quantizer (per-channel symmetric
                 weights, per-tensor activations) with set_global + a filter that keeps
                 plan.float_layers and program.float_only in float; calibrated on the
                 plan's captured pipeline inputs; convert_pt2e; torch.export again
  int8-weights   dynamic INT8 (weights INT8, activation scales computed at run time):
                 for linear-heavy programs, no calibration needed
  fp16           the FP16 audit runs first (edgeth.quantize.fp16_audit): LayerNorms at
                 width >= 256 become the 4-D-means form (the portable FP16 LayerNorm is
                 wrong there), overflowing modules stay FP32; the module runs in half
                 precision behind FP32 inputs/outputs. On x86 XNNPACK FP16 is slower than
                 FP32 (measured; see quantize/README.md) - it is there for ARM phones.
"""
from __future__ import annotations

from typing import Any

from edgeth.quantize.targets_common import base_report, calibration, pt2e_quantized, require

SUPPORTED = ("fp32", "fp16", "int8", "int8-weights", "mixed")


def apply(program: Any, ep: Any, plan: Any) -> tuple[Any, dict[str, Any]]:
    precision = require(plan, "executorch", SUPPORTED)
    if precision == "fp32":
        return ep, {}
    if precision == "fp16":
        return _fp16(program, plan)
    return _int8(program, ep, plan, precision)


def _reexport(module: Any, program: Any) -> Any:
    from edgeth.targets.common import quiet_python, torch_dynamic_shapes

    import torch

    with quiet_python(), torch.no_grad():
        return torch.export.export(module, tuple(program.example_inputs),
                                   dynamic_shapes=torch_dynamic_shapes(program.inputs))


def _int8(program: Any, ep: Any, plan: Any, precision: str) -> tuple[Any, dict[str, Any]]:
    from edgeth.quantize.pt2e import check_float_layers, list_units, quantized_units

    mode = "dynamic" if precision == "int8-weights" else "static"
    check_float_layers(ep.module(), plan.float_layers)
    source = calibration(program, plan)[1] if mode == "static" else None
    converted = pt2e_quantized(program, ep, plan, mode)
    units = list_units(ep.module())
    q = quantized_units(converted)
    scheme = ("INT8 static PT2E/XNNPACK: weights per-channel symmetric, activations per-tensor"
              if mode == "static" else "INT8 dynamic PT2E/XNNPACK: weights per-channel symmetric, activations at run time")
    report = base_report(program, plan, scheme, source, units=len(units), int8_units=len(q),
                         float_units=[u.name for u in units if u.node not in q])
    return _reexport(converted, program), report


def _fp16(program: Any, plan: Any) -> tuple[Any, dict[str, Any]]:
    from edgeth.quantize.fp16_audit import explicit_promotion, fp16_module

    samples, source = calibration(program, plan)
    module, audit = fp16_module(program, samples)
    gm = _reexport(module, program).module()
    casts = explicit_promotion(gm)  # FP32 tensors made inside forward meet FP16 activations
    report = base_report(program, plan, "FP16 compute (XNNPACK), FP32 inputs/outputs", source,
                         fp16_audit=audit.to_json(), fixed=list(audit.fixed), promotion_casts=casts,
                         note="XNNPACK FP16 is slower than FP32 on x86; it pays off on ARM cores with FP16 arithmetic")
    return _reexport(gm, program), report
