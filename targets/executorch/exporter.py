"""ExecuTorch export: torch.export -> [quantizer] -> to_edge_transform_and_lower(XNNPACK) -> <program>.pte.

Quantization hook points (quantizer.py):
  * fp32: the ExportedProgram cached by preflight is lowered as is; the .pte built during
    preflight (for the fallback report) is reused, not rebuilt.
  * every lowering goes through targets/lowering_cache.py: with a cache folder active, a
    graph lowered before (by any export, any process) is not lowered again.
  * any other precision: between torch.export and lowering. quantizer.apply(program,
    ep, plan) receives the FP32 ExportedProgram (ATen training IR), runs PT2E
    prepare/calibrate/convert on ep.module() and returns (re-exported ExportedProgram,
    report); the report lands under the artifact report's "quantization";
    lowering, serialization and the delegation report below are the same for every
    precision.

Before partitioning, bilinear `grid_sampler_2d` (border or zeros padding) is rewritten as
index_select + elementwise ops (models/common/warp.sample_by_gather): XNNPACK has no grid
sample, and the portable kernel samples value by value on one thread (10x slower than PyTorch's
on these maps). The rewrite leaves one per-pixel row gather per corner on the portable kernel
and moves the arithmetic into XNNPACK: 16 channels x 128^2 4.6 -> 1.3 ms, 3 x 256^2 3.5 -> 2.9 ms
(2 threads, x86). Other sampling modes keep the native op.

The report says which ops XNNPACK took and which fell back to portable kernels (the
fallbacks decide speed: e.g. grid_sampler_2d and native_layer_norm are not delegated),
with counts and the module paths of the fallbacks.
"""
from __future__ import annotations

import operator
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from edgeth.io_utils import atomic_path
from edgeth.targets import Artifact, PreflightIssue
from edgeth.targets.common import convert_failure, first_line, path_size, precision_of, quiet_python
from edgeth.targets.preflight import ROOT, Rules, export_program, issues, memo, module_path, op_name

RULES = Rules(input_mutation="warning", data_dependent="warning", conv3d="error")  # XNNPACK: no 3-D conv
LOWERED = "executorch.lowered"

# Data movement the portable runtime does cheaply; reported, but not worth a warning.
GLUE_OPS = frozenset({
    "aten.view_copy", "aten.squeeze_copy", "aten.unsqueeze_copy", "aten.expand_copy", "aten.permute_copy",
    "aten.slice_copy", "aten.select_copy", "aten.alias_copy", "aten.clone", "aten._to_copy",
    "aten.index_select",  # row gathers (a rewritten grid sample's: one memcpy of C values per pixel and corner)
    "dim_order_ops._to_dim_order_copy", "dim_order_ops._clone_dim_order",
})
FALLBACK_ADVICE = {
    "aten.grid_sampler_2d": ("XNNPACK has no grid sample and only bilinear border/zeros sampling is rewritten "
                             "as gathers; this one stays on the single-threaded portable kernel"),
    "aten.native_layer_norm": ("XNNPACK has no LayerNorm; write it with mean/var over a 4-D view to get it "
                               "delegated (the portable kernel is also wrong in FP16 for widths >= 256)"),
    "aten.scaled_dot_product_attention": "plain softmax attention lowers fully and is faster than SDPA here",
}


def short_op(target) -> str:
    """'aten.grid_sampler_2d' from an OpOverload / EdgeOpOverload (overload dropped)."""
    parts = op_name(target).split(".")
    return ".".join(parts[:2]) if len(parts) >= 3 else ".".join(parts)


def lower(ep):
    """XNNPACK-partitioned edge program (EdgeProgramManager)."""
    ep = gather_grid_samples(ep)
    with quiet_python():  # the imports too: they pull in torchao, which logs at import
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        return to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])


def _grid_sample_ops():
    """The export-IR spellings of F.grid_sample on 4-D maps (same arguments)."""
    import torch

    return (torch.ops.aten.grid_sampler.default, torch.ops.aten.grid_sampler_2d.default)


def _gatherable(mode, padding) -> bool:
    return mode == 0 and padding in (0, 1)  # bilinear; zeros or border


def gather_grid_samples(ep):
    """`ep` with every bilinear, border/zeros-padded 4-D grid sample replaced by
    models.common.warp.sample_by_gather (module doc); `ep` itself when it has none."""
    if not any(n.op == "call_function" and n.target in _grid_sample_ops() and _gatherable(n.args[2], n.args[3])
               for n in ep.graph.nodes):
        return ep
    import torch

    from edgeth.models.common.warp import sample_by_gather

    def decompose(x, grid, mode, padding, align_corners):
        if x.dim() != 4 or not _gatherable(mode, padding):
            return NotImplemented  # keeps the op
        return sample_by_gather(x, grid, ("zeros", "border")[padding], bool(align_corners))

    return ep.run_decompositions({op: decompose for op in _grid_sample_ops()})


def delegation_report(edge) -> dict[str, Any]:
    """Op counts inside XNNPACK delegates vs on portable kernels, with fallback module paths."""
    gm = edge.exported_program().graph_module
    delegated: Counter = Counter()
    portable: Counter = Counter()
    where: dict[str, list[str]] = defaultdict(list)
    subgraphs = 0
    for node in gm.graph.nodes:
        if node.op == "get_attr" and str(node.target).startswith("lowered_module"):
            subgraphs += 1
            for n in getattr(gm, node.target).original_module.graph.nodes:
                if n.op == "call_function" and n.target is not operator.getitem:
                    delegated[short_op(n.target)] += 1
        elif node.op == "call_function" and node.target is not operator.getitem:
            name = short_op(node.target)
            if name.endswith("executorch_call_delegate"):
                continue
            portable[name] += 1
            path = module_path(node)
            if path not in where[name]:
                where[name].append(path)
    compute = {k: v for k, v in portable.items() if k not in GLUE_OPS}
    return {
        "backend": "xnnpack",
        "delegate_subgraphs": subgraphs,
        "delegated_nodes": sum(delegated.values()),
        "portable_nodes": sum(portable.values()),
        "delegated_ops": dict(sorted(delegated.items())),
        "portable_ops": dict(sorted(portable.items())),
        "portable_compute_ops": dict(sorted(compute.items())),
        "portable_modules": {k: where[k] for k in sorted(compute)},
    }


def lowered(program, ep) -> tuple[bytes, dict[str, Any]]:
    """(.pte bytes, delegation report) of `ep` lowered to XNNPACK and serialized; a graph lowered
    before is taken from the lowering cache (targets/lowering_cache.py) when one is active."""
    from edgeth.targets import lowering_cache

    def build():
        edge = lower(ep)
        report = delegation_report(edge)
        with quiet_python():
            et = edge.to_executorch(_backend_config(program))
        return {"program.pte": bytes(et.buffer)}, report

    dynamic = any(s.dynamic for s in program.inputs)
    recipe = f"xnnpack;dynamic={dynamic};grid_sample=gather-v1"
    files, report = lowering_cache.cached("executorch", lowering_cache.graph_key(ep, recipe), build)
    return files["program.pte"], report


def _lowered(program) -> tuple[bytes, dict[str, Any]]:
    return lowered(program, export_program(program))


def preflight(program, precision: str = "fp32") -> list[PreflightIssue]:
    """Graph rules + known wrong kernels, and for fp32 a trial XNNPACK lowering (kept for the export,
    which reuses it) whose portable-kernel fallbacks become warnings. A quantized export lowers
    its own graph and reports the same warnings from that lowering (export below)."""
    out = issues(program, RULES)
    if any(i.severity == "error" for i in out):
        return out
    out += _wrong_kernels(program)
    if precision != "fp32":
        return out
    try:
        _, report = memo(program, LOWERED, lambda: _lowered(program))
    except Exception as e:
        return out + [PreflightIssue("error", ROOT, f"XNNPACK lowering failed: {type(e).__name__}: {first_line(e, 200)}",
                                     "rewrite the construct named above with core ATen ops; EDGETH_DEBUG=1 for details")]
    return out + portable_warnings(report)


def portable_warnings(report: dict[str, Any]) -> list[PreflightIssue]:
    """One warning per compute op a lowering left on portable kernels (from delegation_report)."""
    out = []
    for op, n in report["portable_compute_ops"].items():
        paths = report["portable_modules"][op]
        shown = ", ".join(paths[:3]) + (f" (+{len(paths) - 3} more)" if len(paths) > 3 else "")
        out.append(PreflightIssue("warning", shown, f"{op} x{n} runs on portable kernels (not delegated to XNNPACK)",
                                  FALLBACK_ADVICE.get(op, "portable kernels are single-threaded reference C++; "
                                                          "prefer an equivalent op XNNPACK delegates")))
    return out


def _wrong_kernels(program) -> list[PreflightIssue]:
    """Ops XNNPACK delegates but computes differently from PyTorch (measured on executorch 1.5.1)."""
    ep = export_program(program)
    paths = [module_path(n) for n in ep.graph.nodes if n.op == "call_function" and "gelu" in op_name(n.target)
             and (n.kwargs.get("approximate") == "tanh" or n.args[1:2] == ("tanh",))]
    if not paths:
        return []
    shown = ", ".join(sorted(set(paths))[:3])
    return [PreflightIssue("error", shown, f"gelu(approximate='tanh') x{len(paths)}: XNNPACK runs it as exact GELU "
                                           "(up to 4.7e-4 off; pytorch/executorch#22851, after 1.5.1)",
                           "use exact GELU (F.gelu(x)) or write the tanh formula out with torch.tanh")]


def export(target, program, plan, out_dir: Path) -> Artifact:
    from edgeth.targets.executorch import quantizer

    precision = precision_of(plan)
    warnings = target.check_preflight(program, precision)
    try:
        if precision == "fp32":
            pte, report = memo(program, LOWERED, lambda: _lowered(program), take=True)
            report = dict(report)
        else:
            ep, qreport = quantizer.apply(program, export_program(program), plan)
            pte, lowered_report = lowered(program, ep)
            report = {**lowered_report, "quantization": qreport}
            warnings += portable_warnings(report)
    except Exception as e:
        if getattr(e, "what", None):  # an EdgethError from the quantizer: already one clean line
            raise
        raise convert_failure("executorch", program.name, e, "lowering") from None
    dest = Path(out_dir) / f"{program.name}.pte"
    with atomic_path(dest) as tmp:
        tmp.write_bytes(pte)
    report.update(size_bytes=path_size(dest), preflight=[w.to_json() for w in warnings],
                  signature={"inputs": [s.to_json() for s in program.inputs],
                             "outputs": [s.to_json() for s in program.outputs]})
    return Artifact(target="executorch", program=program.name, files=[dest.name], precision=precision, report=report)


def _backend_config(program):
    from executorch.exir import ExecutorchBackendConfig

    if any(s.dynamic for s in program.inputs):  # plan memory for the upper bounds, not the example
        from executorch.exir.passes.sym_shape_eval_pass import ConstraintBasedSymShapeEvalPass

        return ExecutorchBackendConfig(sym_shape_eval_pass=ConstraintBasedSymShapeEvalPass())
    return ExecutorchBackendConfig()
