"""TensorRT export: an ONNX model suited to TensorRT + a build recipe; engines are built on the device.

TensorRT engines are specific to a GPU and TensorRT version, so edgeth never ships one:
  <program>.onnx           the FP32 model from the onnx target's exporter (one ONNX exporter)
  <program>.trt.json       build recipe: input shapes / optimization profile, precision flags,
                           FP32-pinned layers, builder defaults, the exact trtexec and polygraphy lines
  <program>.{inputs,outputs}.json  golden vectors in Polygraphy's formats (polygraphy_data.py)
  build_engine.sh          builds every recipe in its folder with trtexec on the device
                           (--dry-run, --verify, --dla-core N, --workspace MB, --timing-cache FILE)
  trt_device.py            device.py copied: trtexec arguments + engine provenance, stdlib only
The Python equivalent of build_engine.sh is edgeth.targets.tensorrt.builder.build_from_recipe.

Quantization hook point (quantizer.py): after the FP32 ONNX is written,
quantizer.apply(program, onnx_path, plan) may rewrite it as an ONNX QDQ model (signed INT8,
zero-point 0: onnxruntime s8s8 symmetric) and returns (trtexec precision flags (--fp16 /
--int8), report); the recipe records the flags, the runtime is unchanged.

Lint (lint.py) runs on the ONNX + recipe as written: an error-severity finding fails the
export with its message; warnings go into the artifact report. Preflight runs the same
operator rules on the FP32 ONNX before anything is written.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from edgeth.errors import UnsupportedOp
from edgeth.io_utils import atomic_path, write_json
from edgeth.targets import Artifact, PreflightIssue
from edgeth.targets.common import first_line, precision_of
from edgeth.targets.preflight import ROOT, Rules, issues

RULES = Rules(input_mutation="warning", data_dependent="warning")  # IGridSampleLayer: 4-D, all modes/paddings

FLAGS = {"fp32": [], "fp16": ["--fp16"], "int8": ["--int8"], "mixed": ["--int8"]}  # the quantizer returns these
# ONNX ops whose FP16 form overflows (variance / sum of squares): pinned to FP32 when --fp16 is on
FP32_PINNED_OPS = frozenset({"LayerNormalization", "InstanceNormalization", "GroupNormalization", "ReduceSumSquare",
                             "ReduceL2", "Pow"})
BUILDER_DEFAULTS = {"workspace_mb": 1024, "timing_cache": "timing.cache", "dla_core": None}
DEVICE_SCRIPT = "trt_device.py"

BUILD_SCRIPT = """#!/usr/bin/env sh
# Build a TensorRT engine for every <program>.trt.json in this folder, ON the device (Jetson /
# NVIDIA GPU): engines are tied to the GPU and the TensorRT version. Each build writes
# <program>.engine and its provenance <program>.engine.json (TensorRT version, GPU, L4T, flags).
#   sh build_engine.sh [--dry-run] [--verify] [--dla-core N] [--workspace MB] [--timing-cache FILE]
#   --dry-run   print the commands, run nothing      --verify  then run each recipe's polygraphy line
#   --dla-core  build for DLA core N (Orin), layers DLA cannot run fall back to the GPU
# trtexec gets the recipe's "trtexec_args" + these options (python3 trt_device.py args RECIPE).
# TRTEXEC=/usr/src/tensorrt/bin/trtexec and POLYGRAPHY=... override the tools on PATH.
set -eu
cd "$(dirname "$0")"
TRTEXEC="${TRTEXEC:-trtexec}"
POLYGRAPHY="${POLYGRAPHY:-polygraphy}"
DRY=0; VERIFY=0; DLA=""; WS=""; CACHE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --verify) VERIFY=1 ;;
    --dla-core) DLA="$2"; shift ;;
    --workspace) WS="$2"; shift ;;
    --timing-cache) CACHE="$2"; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "error: unknown option $1 — see sh build_engine.sh --help" >&2; exit 2 ;;
  esac
  shift
done
OPTS=""
if [ -n "$DLA" ]; then OPTS="$OPTS --dla-core $DLA"; fi
if [ -n "$WS" ]; then OPTS="$OPTS --workspace $WS"; fi
if [ -n "$CACHE" ]; then OPTS="$OPTS --timing-cache $CACHE"; fi
for recipe in *.trt.json; do
  [ -e "$recipe" ] || continue
  args=$(python3 trt_device.py args "$recipe" $OPTS)
  program="${recipe%.trt.json}"
  # shellcheck disable=SC2086
  echo "$TRTEXEC" $args
  echo "python3 trt_device.py write $recipe $OPTS --log $program.build.log"
  check=$(python3 -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1])).get("polygraphy_args", [])))' "$recipe")
  [ "$VERIFY" = 1 ] && echo "$POLYGRAPHY run $check"
  [ "$DRY" = 1 ] && continue
  # shellcheck disable=SC2086
  "$TRTEXEC" $args > "$program.build.log" 2>&1 || { tail -n 30 "$program.build.log"; echo "error: trtexec failed for $program — see $program.build.log" >&2; exit 1; }
  python3 trt_device.py write "$recipe" $OPTS --log "$program.build.log"
  if [ "$VERIFY" = 1 ]; then
    # shellcheck disable=SC2086
    "$POLYGRAPHY" run $check
  fi
done
"""


def _lint_issues(findings) -> list[PreflightIssue]:
    return [PreflightIssue(f.severity, f.module, f"{f.message} [{f.rule}, node {f.node}]", f.advice) for f in findings]


def onnx_issues(program) -> list[PreflightIssue]:
    """TensorRT lint of the program's FP32 ONNX (operator support, 5-D GridSample, ...), as preflight issues."""
    import onnx

    from edgeth.targets.onnx.exporter import onnx_bytes
    from edgeth.targets.tensorrt.lint import lint_model

    return _lint_issues(f for f in lint_model(onnx.load_from_string(onnx_bytes(program))) if f.rule != "profile")


def preflight(program, precision: str = "fp32") -> list[PreflightIssue]:
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


def fp32_pins(onnx_path: Path, flags: list[str]) -> dict[str, str]:
    """{node name: "fp32"} for FP16-overflow patterns (LayerNorm, sums of squares) when --fp16 is on.

    TensorRT's ONNX parser names each layer after its ONNX node, so these are layer names."""
    if "--fp16" not in flags:
        return {}
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return {n.name: "fp32" for n in graph.node if n.op_type in FP32_PINNED_OPS and n.name}


def recipe(program, onnx_name: str, precision: str, flags: list[str], pins: dict[str, str] | None = None) -> dict[str, Any]:
    engine = f"{program.name}.engine"
    shapes = {s.name: shape_profile(s) for s in program.inputs}
    args = [f"--onnx={onnx_name}", f"--saveEngine={engine}", *flags, "--noTF32"]  # tolerances assume true FP32
    if any(s.dynamic for s in program.inputs):
        for key, opt in (("min", "--minShapes"), ("opt", "--optShapes"), ("max", "--maxShapes")):
            args.append(opt + "=" + ",".join(f"{n}:{'x'.join(map(str, p[key]))}" for n, p in shapes.items()))
    if pins:
        args += ["--precisionConstraints=obey", "--layerPrecisions=" + ",".join(f"{n}:{p}" for n, p in pins.items())]
    rec = {
        "program": program.name, "onnx": onnx_name, "engine": engine, "precision": precision, "flags": flags,
        "inputs": [{"name": s.name, "dtype": s.dtype, **shapes[s.name]} for s in program.inputs],
        "outputs": [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in program.outputs],
        "layer_precisions": dict(pins or {}), "builder": dict(BUILDER_DEFAULTS), "trtexec_args": args,
    }
    from edgeth.targets.tensorrt.device import trtexec_args

    rec["trtexec"] = "trtexec " + " ".join(trtexec_args(rec, rec["builder"]))
    return rec


def write_build_script(out_dir: Path) -> list[str]:
    """build_engine.sh (executable) + trt_device.py (the stdlib helper it runs) into out_dir."""
    dest = Path(out_dir) / "build_engine.sh"
    with atomic_path(dest) as tmp:
        tmp.write_text(BUILD_SCRIPT)
    os.chmod(dest, 0o755)  # after the rename: atomic_path applies the umask mode to what it renames
    with atomic_path(Path(out_dir) / DEVICE_SCRIPT) as tmp:
        shutil.copyfile(Path(__file__).with_name("device.py"), tmp)
    return [dest.name, DEVICE_SCRIPT]


def lint_or_fail(program, onnx_path: Path, rec: dict[str, Any]) -> list[dict[str, str]]:
    """Lint the written ONNX + recipe; UnsupportedOp on an error finding, else the warnings as JSON."""
    from edgeth.targets.tensorrt.lint import lint_model

    import onnx

    findings = lint_model(onnx.load(str(onnx_path)), None, rec)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        more = f" (+{len(errors) - 1} more: edgeth lint BUNDLE --target tensorrt)" if len(errors) > 1 else ""
        e = errors[0]
        raise UnsupportedOp(f"tensorrt lint failed for program {program.name!r}: [{e.rule}] {e.message} at node {e.node} "
                            f"(module {e.module}){more}", e.advice)
    return [f.to_json() for f in findings]


def export(target, program, plan, out_dir: Path) -> Artifact:
    from edgeth.targets.onnx.exporter import write_onnx
    from edgeth.targets.tensorrt import quantizer

    precision = precision_of(plan)
    warnings = target.check_preflight(program, precision)
    out_dir = Path(out_dir)
    onnx_path = out_dir / f"{program.name}.onnx"
    report = write_onnx(program, onnx_path)
    try:
        flags, qreport = (FLAGS["fp32"], {}) if precision == "fp32" else quantizer.apply(program, onnx_path, plan)
        rec = recipe(program, onnx_path.name, precision, flags, fp32_pins(onnx_path, flags))
        lint = lint_or_fail(program, onnx_path, rec)
    except BaseException:
        onnx_path.unlink(missing_ok=True)  # no half-made artifact
        raise
    recipe_path = write_json(out_dir / f"{program.name}.trt.json", rec)
    scripts = write_build_script(out_dir)
    report.update(engine=rec["engine"], trtexec=rec["trtexec"], preflight=[w.to_json() for w in warnings],
                  quantization=qreport, lint=lint, layer_precisions=rec["layer_precisions"],
                  signature={"inputs": [s.to_json() for s in program.inputs],
                             "outputs": [s.to_json() for s in program.outputs]})
    return Artifact(target="tensorrt", program=program.name, files=[onnx_path.name, recipe_path.name, *scripts],
                    precision=precision, report=report)


def load_recipe(path: Path) -> dict[str, Any]:
    from edgeth.errors import BundleError

    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise BundleError(f"cannot read TensorRT recipe {Path(path).name}: {e}", "re-export the bundle") from None
