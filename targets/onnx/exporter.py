"""ONNX export: torch.onnx.export(dynamo=True, opset 18) of the preflight's ExportedProgram -> <program>.onnx.

Quantization hook point (quantizer.py): post-processing of the checked FP32 .onnx. For a
non-fp32 plan the FP32 model is written to a temp file, quantizer.apply(program,
fp32_path, plan, dest) writes the QDQ (s8s8 symmetric, which TensorRT also accepts) or
FP16 model to dest and returns its report (the artifact report's "quantization"), and the
result is checked again. TensorRT reuses `write_onnx` and
`onnx_bytes` from here, so there is one ONNX exporter in edgeth. With a lowering cache active
(edgeth export --cache) a graph exported to ONNX before is not exported again.

Everything is a single file (external_data=False, < 2 GB), written atomically and checked
with onnx.checker.check_model(full_check=True) before it is renamed into place.
"""
from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from edgeth.errors import BundleError
from edgeth.io_utils import atomic_path
from edgeth.targets import Artifact, PreflightIssue
from edgeth.targets.common import convert_failure, path_size, precision_of, quiet_python
from edgeth.targets.preflight import Rules, export_program, issues, memo

OPSET = 18
ONNX_BYTES = "onnx.fp32"
RULES = Rules(
    grid_sample_rank_severity="warning",
    grid_sample_rank_advice=("opset 18's GridSample is 4-D only (N-D arrived in opset 20): ONNX Runtime runs it, "
                             "other ONNX consumers may reject the model"),
    input_mutation="warning",
    data_dependent="warning",
)


def preflight(program, precision: str = "fp32") -> list[PreflightIssue]:
    return issues(program, RULES)


def _export_bytes(program) -> bytes:
    """torch.onnx.export of the program's ExportedProgram; a graph exported before is taken from
    the lowering cache (targets/lowering_cache.py) when one is active."""
    import json

    import torch

    from edgeth.targets import lowering_cache

    ep = export_program(program)

    def build() -> tuple[lowering_cache.Files, dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix="edgeth-onnx-") as td:
            path = Path(td) / f"{program.name}.onnx"
            try:
                with quiet_python():
                    torch.onnx.export(ep, tuple(program.example_inputs), str(path), dynamo=True, opset_version=OPSET,
                                      external_data=False, input_names=program.input_names,
                                      output_names=program.output_names, verbose=False)
            except Exception as e:
                raise convert_failure("onnx", program.name, e, "export") from None
            return {"model.onnx": path.read_bytes()}, {}

    io = json.dumps([program.input_names, program.output_names, OPSET])
    files, _ = lowering_cache.cached("onnx", lowering_cache.graph_key(ep, f"onnx;{io}"), build)
    return files["model.onnx"]


def onnx_bytes(program) -> bytes:
    """The program's FP32 ONNX model (cached with its ExportedProgram)."""
    return memo(program, ONNX_BYTES, lambda: _export_bytes(program))


def check_model(path: Path, program) -> None:
    """full_check the model and make sure its I/O names are the program's, in order."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:
        raise convert_failure("onnx", program.name, e, "check_model") from None
    graph = onnx.load(str(path), load_external_data=False).graph
    init = {i.name for i in graph.initializer}
    ins = [i.name for i in graph.input if i.name not in init]
    outs = [o.name for o in graph.output]
    if ins != program.input_names or outs != program.output_names:
        raise BundleError(f"ONNX model for {program.name!r} has inputs {ins} / outputs {outs}, expected "
                          f"{program.input_names} / {program.output_names}", "report this export bug")


def model_report(path: Path) -> dict[str, Any]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    ops = Counter(n.op_type for n in model.graph.node)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return {"opset": opset, "nodes": sum(ops.values()), "ops": dict(sorted(ops.items())), "size_bytes": path_size(path)}


def node_module_path(node) -> str:
    """Module path of an ONNX node from the dynamo exporter's metadata ("<root>" if unknown)."""
    import ast

    for p in node.metadata_props:
        if p.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = [s for s in ast.literal_eval(p.value) if s]
            except (ValueError, SyntaxError):
                break
            return ".".join(scopes[:-1]) or "<root>"
    return "<root>"


def write_onnx(program, dest: Path) -> dict[str, Any]:
    """Write the checked FP32 ONNX model to dest atomically; returns its report."""
    data = onnx_bytes(program)
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
        check_model(tmp, program)
    return model_report(Path(dest))


def export(target, program, plan, out_dir: Path) -> Artifact:
    from edgeth.targets.onnx import quantizer

    precision = precision_of(plan)
    warnings = target.check_preflight(program, precision)
    dest = Path(out_dir) / f"{program.name}.onnx"
    if precision == "fp32":
        report = write_onnx(program, dest)
    else:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".edgeth-onnx-", dir=out_dir) as td:
            fp32 = Path(td) / "fp32.onnx"
            write_onnx(program, fp32)
            with atomic_path(dest) as tmp:
                qreport = quantizer.apply(program, fp32, plan, tmp)
                check_model(tmp, program)
        report = {**model_report(dest), "quantization": qreport}
    report["preflight"] = [w.to_json() for w in warnings]
    return Artifact(target="onnx", program=program.name, files=[dest.name], precision=precision, report=report)
