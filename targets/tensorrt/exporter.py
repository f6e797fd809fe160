"""TensorRT export: an ONNX model suited to TensorRT + a build recipe; engines are built on the device.

TensorRT engines are specific to a GPU and TensorRT version, so edgeth never ships one:
  <program>.onnx       the FP32 model from the onnx target's exporter (one ONNX exporter)
  <program>.trt.json   build recipe: input shapes / optimization profile, precision flags,
                       the exact trtexec arguments
  build_engine.sh      builds every recipe in its folder with trtexec on the device
The Python equivalent of build_engine.sh is edgeth.targets.tensorrt.builder.build_engine.

Quantization hook point (quantizer.py): after the FP32 ONNX is written,
quantizer.apply(program, onnx_path, plan) may rewrite it as an ONNX QDQ model (signed INT8,
zero-point 0: onnxruntime s8s8 symmetric) and returns (trtexec precision flags (--fp16 /
--int8), report); the recipe records the flags, the runtime is unchanged.

Preflight adds an ONNX-level check to the torch-level rules: ONNX ops TensorRT's parser
has no importer for (a small explicit list, TRT_UNSUPPORTED) are errors naming the module.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edgeth.io_utils import atomic_path, write_json
from edgeth.targets import Artifact, PreflightIssue
from edgeth.targets.common import first_line, precision_of
from edgeth.targets.preflight import ROOT, Rules, issues

RULES = Rules(input_mutation="warning", data_dependent="warning")  # IGridSampleLayer: 4-D, all modes/paddings

# ONNX ops TensorRT 10's ONNX parser does not import (onnx-tensorrt docs/operators.md).
TRT_UNSUPPORTED = frozenset({
    "Bernoulli", "BitShift", "BlackmanWindow", "HammingWindow", "HannWindow", "MelWeightMatrix", "DFT", "STFT",
    "ConcatFromSequence", "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert",
    "SequenceLength", "SequenceMap", "SplitToSequence", "Optional", "OptionalGetElement", "OptionalHasElement",
    "ConvInteger", "MatMulInteger", "QLinearConv", "QLinearMatMul", "DynamicQuantizeLinear", "Det", "MaxRoiPool",
    "MaxUnpool", "Multinomial", "NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss", "StringNormalizer",
    "TfIdfVectorizer", "Unique", "Col2Im", "RegexFullMatch", "StringConcat", "StringSplit",
})

FLAGS = {"fp32": [], "fp16": ["--fp16"], "int8": ["--int8"], "mixed": ["--int8"]}  # the quantizer returns these

BUILD_SCRIPT = """#!/usr/bin/env sh
# Build a TensorRT engine for every <program>.trt.json in this folder. Run it ON the device
# (Jetson / desktop NVIDIA GPU): engines are tied to the GPU and the TensorRT version.
#   sh build_engine.sh            uses trtexec from PATH (TRTEXEC=/usr/src/tensorrt/bin/trtexec to override)
# Each recipe's "trtexec_args" hold the exact flags (--onnx, --saveEngine, shapes, --fp16/--int8).
set -eu
cd "$(dirname "$0")"
TRTEXEC="${TRTEXEC:-trtexec}"
for recipe in *.trt.json; do
  [ -e "$recipe" ] || continue
  args=$(python3 -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))["trtexec_args"]))' "$recipe")
  echo "$TRTEXEC $args"
  # shellcheck disable=SC2086
  "$TRTEXEC" $args
done
"""


def onnx_issues(program) -> list[PreflightIssue]:
    """ONNX ops TensorRT cannot import, with the module path that produced them."""
    import onnx

    from edgeth.targets.onnx.exporter import node_module_path, onnx_bytes

    model = onnx.load_from_string(onnx_bytes(program))
    seen: dict[tuple[str, str], int] = {}
    for node in model.graph.node:
        if node.op_type in TRT_UNSUPPORTED:
            key = (node_module_path(node), node.op_type)
            seen[key] = seen.get(key, 0) + 1
    return [PreflightIssue("error", path, f"ONNX op {op} x{n} (TensorRT's ONNX parser has no importer for it)",
                           "rewrite it with supported ops or run this part on the host") for (path, op), n in seen.items()]


def preflight(program) -> list[PreflightIssue]:
    out = issues(program, RULES)
    if any(i.severity == "error" for i in out):
        return out
    try:
        return out + onnx_issues(program)
    except Exception as e:
        return out + [PreflightIssue("error", ROOT, f"ONNX export for TensorRT failed: {first_line(e, 200)}",
                                     "fix the ONNX export first (edgeth export --target onnx shows details)")]


def shape_profile(spec) -> dict[str, list[int]]:
    """min/opt/max shapes of one input (opt = the example shape)."""
    lo = [spec.dynamic[i][1] if i in spec.dynamic else d for i, d in enumerate(spec.shape)]
    hi = [spec.dynamic[i][2] if i in spec.dynamic else d for i, d in enumerate(spec.shape)]
    return {"min": lo, "opt": list(spec.shape), "max": hi}


def recipe(program, onnx_name: str, precision: str, flags: list[str]) -> dict[str, Any]:
    engine = f"{program.name}.engine"
    shapes = {s.name: shape_profile(s) for s in program.inputs}
    args = [f"--onnx={onnx_name}", f"--saveEngine={engine}", *flags]
    if any(s.dynamic for s in program.inputs):
        for key, opt in (("min", "--minShapes"), ("opt", "--optShapes"), ("max", "--maxShapes")):
            args.append(opt + "=" + ",".join(f"{n}:{'x'.join(map(str, p[key]))}" for n, p in shapes.items()))
    return {
        "program": program.name, "onnx": onnx_name, "engine": engine, "precision": precision, "flags": flags,
        "inputs": [{"name": s.name, "dtype": s.dtype, **shapes[s.name]} for s in program.inputs],
        "outputs": [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in program.outputs],
        "trtexec_args": args, "trtexec": "trtexec " + " ".join(args),
    }


def write_build_script(out_dir: Path) -> str:
    dest = Path(out_dir) / "build_engine.sh"
    with atomic_path(dest) as tmp:
        tmp.write_text(BUILD_SCRIPT)
    os.chmod(dest, 0o755)  # after the rename: atomic_path applies the umask mode to what it renames
    return dest.name


def export(target, program, plan, out_dir: Path) -> Artifact:
    from edgeth.targets.onnx.exporter import write_onnx
    from edgeth.targets.tensorrt import quantizer

    warnings = target.check_preflight(program)
    precision = precision_of(plan)
    out_dir = Path(out_dir)
    onnx_path = out_dir / f"{program.name}.onnx"
    report = write_onnx(program, onnx_path)
    try:
        flags, qreport = (FLAGS["fp32"], {}) if precision == "fp32" else quantizer.apply(program, onnx_path, plan)
    except BaseException:
        onnx_path.unlink(missing_ok=True)  # no half-made artifact
        raise
    rec = recipe(program, onnx_path.name, precision, flags)
    recipe_path = write_json(out_dir / f"{program.name}.trt.json", rec)
    script = write_build_script(out_dir)
    report.update(engine=rec["engine"], trtexec=rec["trtexec"], preflight=[w.to_json() for w in warnings],
                  quantization=qreport)
    return Artifact(target="tensorrt", program=program.name, files=[onnx_path.name, recipe_path.name, script],
                    precision=precision, report=report)


def load_recipe(path: Path) -> dict[str, Any]:
    from edgeth.errors import BundleError

    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise BundleError(f"cannot read TensorRT recipe {Path(path).name}: {e}", "re-export the bundle") from None
