"""Golden vectors in Polygraphy's own formats, and the `polygraphy run` line that checks an engine.

Follows Polygraphy's data-file formats (polygraphy.json.save_json of a list of feed dicts for
--load-inputs; comparator.RunResults for --load-outputs), so a Jetson team verifies a bundle
with NVIDIA's tools alone:
  <program>.inputs.json    one feed dict {input name: array} per golden call (iteration)
  <program>.outputs.json   the PyTorch FP32 reference outputs, runner "pytorch-fp32"
  recipe "polygraphy"      polygraphy run <program>.onnx --trt [--fp16|--int8] [shapes]
                           --load-inputs ... --load-outputs ... --atol ... --rtol ... --check-error-stat ...

Tolerances come from the bundle's table (edgeth.tolerances), per output kind:
  max_abs            elementwise |got - ref| <= max_abs                       (exact: the same bound)
  token_agreement    elementwise atol 0, or quantile stat at q = agreement     (exact: the same bound)
  psnr_db / sqnr_db  mean |got - ref| <= peak·10^(-psnr/20) / rms(ref)·10^(-sqnr/20), the largest
                     over the golden calls. Mean |e| <= RMS(e), so every output that meets the
                     table's PSNR/SQNR passes here: a necessary check that catches broken engines;
                     `edgeth verify --outputs` applies the full metrics.
rtol is 0 everywhere (the table has no relative bound). Shapes: arrays keep the program's
TensorSpec shapes (batch first, e.g. image [1,3,H,W]).
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Sequence

from edgeth.errors import InputError

RUNNER = "pytorch-fp32"


def _rms(a) -> float:
    import numpy as np

    return float(np.sqrt(np.mean(np.square(np.asarray(a, dtype=np.float64))))) if np.size(a) else 0.0


def output_tolerance(tol: dict[str, float], refs: Sequence[Any]) -> dict[str, Any]:
    """{"stat", "atol", "quantile"?} for one output from its table entry and its reference values per call."""
    from edgeth.runtime_py.parity import data_range

    if "max_abs" in tol:
        return {"stat": "elemwise", "atol": float(tol["max_abs"])}
    if "token_agreement" in tol:
        q = float(tol["token_agreement"])
        return {"stat": "elemwise", "atol": 0.0} if q >= 1.0 else {"stat": "quantile", "atol": 0.0, "quantile": q}
    if "psnr_db" in tol:
        bound = max(data_range(r) for r in refs) * 10 ** (-float(tol["psnr_db"]) / 20)
    elif "sqnr_db" in tol:
        bound = max(_rms(r) for r in refs) * 10 ** (-float(tol["sqnr_db"]) / 20)
    else:
        raise InputError(f"tolerance {tol} has no bound Polygraphy can check", "add max_abs, psnr_db or sqnr_db")
    return {"stat": "mean", "atol": float(f"{bound:.6g}")}


def tolerance_args(outputs: list[tuple[str, str]], precision: str, calls: list[list[Any]]) -> list[str]:
    """--atol/--rtol/--check-error-stat [--error-quantile] per output name (outputs: [(name, kind)])."""
    from edgeth.tolerances import tolerance_for

    atol, rtol, stat, quant = ["--atol"], ["--rtol"], ["--check-error-stat"], ["--error-quantile"]
    for j, (name, kind) in enumerate(outputs):
        t = output_tolerance(tolerance_for(precision, kind), [c[j] for c in calls])
        atol.append(f"{name}:{t['atol']:g}")
        rtol.append(f"{name}:0")
        stat.append(f"{name}:{t['stat']}")
        if "quantile" in t:
            quant.append(f"{name}:{t['quantile']:g}")
    return atol + rtol + stat + (quant if len(quant) > 1 else [])


def shape_args(recipe: dict[str, Any]) -> list[str]:
    """--trt-{min,opt,max}-shapes when any input is dynamic (Polygraphy's profile syntax)."""
    if all(i["min"] == i["max"] for i in recipe["inputs"]):
        return []
    out = []
    for key in ("min", "opt", "max"):
        out += [f"--trt-{key}-shapes"] + [f"{i['name']}:[{','.join(map(str, i[key]))}]" for i in recipe["inputs"]]
    return out


def polygraphy_args(recipe: dict[str, Any], inputs_file: str, outputs_file: str, tol: list[str]) -> list[str]:
    flags = [f for f in recipe.get("flags", []) if f in ("--fp16", "--int8")]
    pins = recipe.get("layer_precisions") or {}
    pin_args = (["--layer-precisions"] + [f"{n}:float32" for n in pins] + ["--precision-constraints", "obey"]) if pins else []
    return [recipe["onnx"], "--trt", *flags, *shape_args(recipe), *pin_args,
            "--load-inputs", inputs_file, "--load-outputs", outputs_file, *tol]


def _feed(program: str, what: str, names: list[str], call: list[Any]) -> dict[str, Any]:
    """{name: C-ordered array} for one call, refusing what Polygraphy would misread or compare badly:
    unnamed or repeated names (a feed dict keeps one), a count that is not one array per name, and
    references that are empty or not finite (no error bound can be derived from them)."""
    import numpy as np

    if len(set(names)) != len(names) or not all(names):
        raise InputError(f"golden {what}s of {program!r} have empty or repeated names {names}",
                         "re-export the bundle: every program input and output needs its own name")
    if len(call) != len(names):
        raise InputError(f"golden call of {program!r} has {len(call)} {what}s for {len(names)} names {names}",
                         "re-export the bundle (its golden files do not match the program's signature)")
    feed = {}
    for name, a in zip(names, call):
        a = np.asarray(a, order="C")  # keeps 0-d arrays 0-d (np.ascontiguousarray makes them 1-d)
        if what == "output" and (a.size == 0 or (a.dtype.kind in "fc" and not np.isfinite(a).all())):
            raise InputError(f"golden output {name!r} of {program!r} is empty or not finite",
                             "the FP32 reference is broken: fix the model or its golden inputs and re-export")
        feed[name] = a
    return feed


def write_data(folder: Path, program: str, input_names: list[str], output_names: list[str],
               inputs: list[list[Any]], outputs: list[list[Any]]) -> tuple[str, str]:
    """<program>.inputs.json + <program>.outputs.json in Polygraphy's formats; returns their names."""
    import numpy as np
    from polygraphy.comparator import RunResults
    from polygraphy.comparator.struct import IterationResult
    from polygraphy.json import save_json
    from polygraphy.logger import G_LOGGER

    from edgeth.io_utils import atomic_path

    if not inputs or len(inputs) != len(outputs):
        raise InputError(f"golden vectors for {program!r}: {len(inputs)} input sets, {len(outputs)} output sets",
                         "pass one list of outputs per list of inputs (at least one call)")
    feeds = [_feed(program, "input", input_names, call) for call in inputs]
    results = RunResults()
    results.append((RUNNER, [IterationResult(outputs=_feed(program, "output", output_names, call), runner_name=RUNNER)
                             for call in outputs]))
    names = (f"{program}.inputs.json", f"{program}.outputs.json")
    with G_LOGGER.verbosity(G_LOGGER.WARNING):  # no "[I] Saving ..." lines
        with atomic_path(Path(folder) / names[0]) as tmp:
            save_json(feeds, str(tmp), description="golden inputs")
        with atomic_path(Path(folder) / names[1]) as tmp:
            results.save(str(tmp))
    return names


def attach_golden(artifact_dir: Path, artifact, inputs: list[list[Any]], outputs: list[list[Any]]) -> list[str]:
    """Write the Polygraphy data files and put the `polygraphy run` line into the program's recipe."""
    from edgeth.io_utils import write_json
    from edgeth.targets.tensorrt.exporter import load_recipe

    artifact_dir = Path(artifact_dir)
    sig = artifact.report.get("signature") or {}
    ins = [s["name"] for s in sig.get("inputs", [])]
    outs = [(s["name"], s.get("kind", "tensor")) for s in sig.get("outputs", [])]
    if not ins or not outs:
        raise InputError(f"TensorRT artifact {artifact.program!r} has no recorded signature", "re-export the bundle")
    in_file, out_file = write_data(artifact_dir, artifact.program, ins, [n for n, _ in outs], inputs, outputs)
    recipe_path = artifact_dir / f"{artifact.program}.trt.json"
    recipe = load_recipe(recipe_path)
    args = polygraphy_args(recipe, in_file, out_file, tolerance_args(outs, artifact.precision, outputs))
    recipe.update(polygraphy_args=args, polygraphy="polygraphy run " + shlex.join(args))
    write_json(recipe_path, recipe)
    return [in_file, out_file]


def onnxrt_args(recipe: dict[str, Any]) -> list[str]:
    """The recipe's own polygraphy line with --trt swapped for --onnxrt (runs here, no TensorRT)."""
    return ["--onnxrt" if a == "--trt" else a for a in recipe["polygraphy_args"]]
