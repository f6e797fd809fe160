"""Core ML export: ct.convert(ExportedProgram.run_decompositions({})) -> <program>.mlpackage (ML program).

Settings: convert_to="mlprogram", minimum_deployment_target iOS16 (DEPLOYMENT_TARGET),
compute_precision FLOAT32 for fp32, every input a fixed-shape TensorType (ct.RangeDim
for TensorSpec.dynamic dims), every output pinned to float32 so an FP16 model still
returns FP32 arrays (iOS16+ would otherwise return FP16).

Quantization hook point (quantizer.py): around ct.convert. quantizer.apply(program, ep, plan)
gives the ExportedProgram to convert, a recipe and the report (compute_precision FLOAT16 for
fp16, weight compression (ct.optimize.coreml.linear_quantize_weights) for int8-weights, W8A8
from a PT2E-quantized ExportedProgram (see the export-stack notes)); quantizer.build converts
it. The saved package goes through targets/lowering_cache.py: with a cache folder active, a
graph converted before under the same recipe is not converted again.

The .mlpackage is a directory: written under a temp name in out_dir, then renamed.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from edgeth.io_utils import atomic_path
from edgeth.targets import Artifact, PreflightIssue
from edgeth.targets.common import convert_failure, path_size, precision_of, quiet_python
from edgeth.targets.preflight import Rules, export_program, issues

DEPLOYMENT_TARGET = "iOS16"
# coremltools writes this beside model.mlmodel when it converts an EXIR-dialect program: a map
# from ExecuTorch debug handles to MIL ops, read only by ExecuTorch's Core ML delegate tooling.
# A standalone .mlpackage has no ExecuTorch handles to map (every entry maps null here), and on
# CI two exports of one graph in one process differed by this file alone (not reproduced here:
# repeated conversions gave identical bytes), so edgeth does not ship it.
DEBUG_HANDLE_MAP = "executorch_debug_handle_mapping.json"
RULES = Rules(
    grid_sample_modes=frozenset({"bilinear", "nearest"}),  # the MIL `resample` op has no bicubic
    input_mutation="error",  # ct.convert refuses user input mutation (inputs are immutable in Core ML)
    data_dependent="error",
)


def preflight(program, precision: str = "fp32") -> list[PreflightIssue]:
    return issues(program, RULES)


def _tensor_types(ct, specs, outputs: bool = False):
    import numpy as np

    out = []
    for s in specs:
        if outputs:
            out.append(ct.TensorType(name=s.name, dtype=np.float32 if s.dtype.startswith("float") else None))
            continue
        shape = [ct.RangeDim(lower_bound=s.dynamic[i][1], upper_bound=s.dynamic[i][2], default=d)
                 if i in s.dynamic else d for i, d in enumerate(s.shape)]
        out.append(ct.TensorType(name=s.name, shape=ct.Shape(shape) if s.dynamic else tuple(shape),
                                 dtype=np.dtype(s.dtype).type))
    return out


def convert(program, precision: str = "fp32", ep=None, deployment_target: str = DEPLOYMENT_TARGET):
    """The converted ct.models.MLModel (not loaded: conversion works on Linux).

    `ep` replaces the program's own ExportedProgram (the quantizer passes a PT2E-quantized
    one, which needs iOS17 for its quantize/dequantize ops)."""
    with quiet_python():  # coremltools logs and pulls in torchao at import
        import coremltools as ct

    compute = ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32
    try:
        with quiet_python():
            ep = (ep or export_program(program)).run_decompositions({})  # ct.convert wants the ATen dialect
            return ct.convert(ep, inputs=_tensor_types(ct, program.inputs),
                              outputs=_tensor_types(ct, program.outputs, outputs=True),
                              convert_to="mlprogram", minimum_deployment_target=getattr(ct.target, deployment_target),
                              compute_precision=compute, skip_model_load=True)
    except Exception as e:
        raise convert_failure("coreml", program.name, e, "ct.convert") from None


def save_mlpackage(mlmodel, dest: Path) -> None:
    """Save to a temp .mlpackage in dest's folder, then move it into place atomically."""
    dest = Path(dest)
    with atomic_path(dest, is_dir=True) as tmp:
        with tempfile.TemporaryDirectory(prefix=".mlpkg-", dir=dest.parent) as td:
            staged = Path(td) / dest.name
            with quiet_python():
                mlmodel.save(str(staged))
            _deterministic_package_manifest(staged / "Manifest.json")
            (staged / DEBUG_HANDLE_MAP).unlink(missing_ok=True)
            for child in staged.iterdir():
                shutil.move(str(child), str(tmp / child.name))


def _deterministic_package_manifest(path: Path) -> None:
    """coremltools names package items with random UUIDs; derive them from each item's path
    instead (uuid5), so exporting the same model twice gives byte-identical packages."""
    import json
    import uuid

    if not path.is_file():
        return
    m = json.loads(path.read_text())
    entries = m.get("itemInfoEntries", {})
    rename = {old: str(uuid.uuid5(uuid.NAMESPACE_URL, "edgeth:" + e.get("path", old))).upper()
              for old, e in entries.items()}
    m["itemInfoEntries"] = {rename[k]: v for k, v in entries.items()}
    if m.get("rootModelIdentifier") in rename:
        m["rootModelIdentifier"] = rename[m["rootModelIdentifier"]]
    path.write_text(json.dumps(m, indent=4, sort_keys=True) + "\n")


def describe(path: Path) -> dict[str, Any]:
    """Read the saved spec (works on Linux): I/O names, shapes, dtypes, MIL op counts."""
    with quiet_python():
        import coremltools as ct

    spec = ct.utils.load_spec(str(path))
    dt = {v: k for k, v in ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.items()}

    def io(features):
        return [{"name": f.name, "shape": list(f.type.multiArrayType.shape),
                 "dtype": dt.get(f.type.multiArrayType.dataType, "?")} for f in features]

    ops: Counter = Counter()
    for fn in spec.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            ops.update(op.type for op in block.operations)
    return {"spec_version": spec.specificationVersion, "inputs": io(spec.description.input),
            "outputs": io(spec.description.output), "mil_ops": dict(sorted(ops.items()))}


def export(target, program, plan, out_dir: Path) -> Artifact:
    from edgeth.targets.coreml import quantizer

    from edgeth.targets import lowering_cache

    precision = precision_of(plan)
    warnings = target.check_preflight(program, precision)
    ep, recipe, qreport = ((export_program(program), "fp32", {}) if precision == "fp32"
                           else quantizer.apply(program, export_program(program), plan))

    def build() -> tuple[lowering_cache.Files, dict[str, Any]]:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".mlpkg-", dir=out_dir) as td:
            staged = Path(td) / "model.mlpackage"
            save_mlpackage(quantizer.build(program, ep, recipe), staged)
            return lowering_cache.read_tree(staged), {}

    io = json.dumps([program.signature_json(), DEPLOYMENT_TARGET], sort_keys=True, default=str)
    files, _ = lowering_cache.cached("coreml", lowering_cache.graph_key(ep, f"coreml;{recipe};{io}"), build)
    dest = Path(out_dir) / f"{program.name}.mlpackage"
    with atomic_path(dest, is_dir=True) as tmp:
        lowering_cache.write_tree(tmp, files)
    report = {"deployment_target": qreport.get("deployment_target", DEPLOYMENT_TARGET),
              "compute_precision": "float32" if precision == "fp32" else precision,
              **describe(dest), "size_bytes": path_size(dest), "preflight": [w.to_json() for w in warnings],
              "quantization": qreport}
    return Artifact(target="coreml", program=program.name, files=[dest.name], precision=precision, report=report)
