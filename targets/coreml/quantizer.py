"""Core ML quantization: around ct.convert (see exporter.py).

`apply(program, ep, plan) -> (ExportedProgram to convert, recipe, report)`; the exporter
converts it with `build(program, ep, recipe)`, through the lowering cache.

  fp16           ct.convert with compute_precision FLOAT16 (outputs stay pinned FP32)
  int8-weights   weight-only INT8: ct.optimize.coreml.linear_quantize_weights
                 (linear_symmetric, per-channel), on the FP32 conversion; works on Linux
  int8 / mixed   W8A8: coremltools' own PT2E quantizer does not import under torch 2.13
                 and linear_quantize_activations needs predict() (macOS), so the program is
                 quantized with edgeth's PT2E flow (XNNPACK quantizer: per-channel symmetric
                 weights, per-tensor activations, calibrated on the captured pipeline inputs,
                 plan.float_layers / program.float_only in float; the same quantized graph
                 ExecuTorch lowers) and the quantized graph is converted; its
                 quantize/dequantize ops need deployment target iOS17

Conversions export on Linux; predict() is macOS-only (the runner says so).
"""
from __future__ import annotations

from typing import Any

from edgeth.quantize.targets_common import base_report, calibration, pt2e_quantized, require

SUPPORTED = ("fp32", "fp16", "int8", "int8-weights", "mixed")
W8A8_TARGET = "iOS17"


def apply(program: Any, ep: Any, plan: Any) -> tuple[Any, str, dict[str, Any]]:
    """(the ExportedProgram to convert, the conversion recipe, report) for the plan's precision;
    `ep` is the program's FP32 ExportedProgram. The exporter converts with `build(program, ep,
    recipe)` (through the lowering cache).

    Recipes: "fp32", "fp16" (compute precision), "int8-weights" (FP32 conversion, then weight
    compression), "w8a8" (a PT2E-quantized graph converted for iOS17)."""
    precision = require(plan, "coreml", SUPPORTED)
    if precision == "fp32":
        return ep, "fp32", {}
    if precision == "fp16":
        return ep, "fp16", base_report(program, plan, "FP16 compute precision, FP32 outputs")
    if precision == "int8-weights":
        return ep, "int8-weights", base_report(program, plan, "weight-only INT8 (linear_symmetric, per-channel), "
                                               "FP32 compute", note="weights of fewer than 512 elements stay FP32")
    return _w8a8(program, ep, plan)


def build(program: Any, ep: Any, recipe: str) -> Any:
    """The converted (not loaded) MLModel of `ep` under `recipe` (see apply)."""
    from edgeth.targets.coreml.exporter import convert

    if recipe == "w8a8":
        return convert(program, "fp32", ep=ep, deployment_target=W8A8_TARGET)
    mlmodel = convert(program, "fp16" if recipe == "fp16" else "fp32", ep=ep)
    return _compress(mlmodel) if recipe == "int8-weights" else mlmodel


def _compress(mlmodel: Any) -> Any:
    from edgeth.targets.common import quiet_python

    with quiet_python():
        import coremltools.optimize.coreml as cto

        config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(
            mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=512))
        return cto.linear_quantize_weights(mlmodel, config=config)


def _w8a8(program: Any, ep: Any, plan: Any) -> tuple[Any, str, dict[str, Any]]:
    from edgeth.quantize.pt2e import check_float_layers, list_units, quantized_units
    from edgeth.targets.common import quiet_python, torch_dynamic_shapes

    import torch

    check_float_layers(ep.module(), plan.float_layers)
    source = calibration(program, plan)[1]
    converted = pt2e_quantized(program, ep, plan, "static")
    folded = fold_asymmetric_constants(converted)
    with quiet_python(), torch.no_grad():
        qep = torch.export.export(converted, tuple(program.example_inputs),
                                  dynamic_shapes=torch_dynamic_shapes(program.inputs))
    units = list_units(ep.module())
    q = quantized_units(converted)
    return qep, "w8a8", base_report(program, plan, "W8A8: PT2E INT8 (per-channel symmetric weights, per-tensor "
                                    "activations) converted to Core ML quantize/dequantize", source,
                                    deployment_target=W8A8_TARGET, units=len(units), int8_units=len(q),
                                    float_units=[u.name for u in units if u.node not in q], folded_constants=folded)


def fold_asymmetric_constants(gm: Any) -> int:
    """Replace dequantize_per_tensor(int8 constant, zero point != 0) by its float value; returns how many.

    coremltools 9.0 folds such a dequantize wrongly: it shifts the int8 constant to uint8 and
    reads it back as int8, so IF-MDM's `image * 2 - 1` became `image * -0.0078 - 1` (found by
    coreml-sim). Quantized weights (per-channel, zero point 0) are left as they are."""
    import functools

    import torch

    from edgeth.quantize.pt2e import is_dequantize

    n = 0
    for node in list(gm.graph.nodes):
        src = node.args[0] if is_dequantize(node) and node.args else None
        if getattr(src, "op", "") != "get_attr" or "per_tensor" not in str(node.target):
            continue
        zp = node.args[2] if len(node.args) > 2 else node.kwargs.get("zero_point", 0)
        if isinstance(zp, torch.fx.Node) or not zp:
            continue
        value = node.target(functools.reduce(getattr, src.target.split("."), gm), *node.args[1:], **node.kwargs)
        name = f"_edgeth_folded_constant_{n}"
        gm.register_buffer(name, value)
        with gm.graph.inserting_before(node):
            node.replace_all_uses_with(gm.graph.get_attr(name))
        gm.graph.erase_node(node)
        n += 1
    if n:
        gm.graph.eliminate_dead_code()
        gm.recompile()
    return n
