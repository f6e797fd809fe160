"""Structural checks of a bundle's Core ML programs, on every platform (no Core ML needed).

Per program, one check `structure/<program>`:
  - the spec and its ML Program load (coremltools' reader)
  - declared inputs/outputs match the manifest: names and order, shapes (dynamic dims
    excepted), dtypes
  - the function's opset (its deployment target) defines every op it uses
  - every weight file of the package is in the manifest's file table with the same sha256

Shape legend: none.
"""
from __future__ import annotations

from typing import Any

WEIGHT_DIR = "Data/com.apple.CoreML/weights"


def io_problems(prog, entry: dict[str, Any]) -> list[str]:
    """Differences between the spec's declared I/O and the manifest entry (empty: they agree)."""
    spec_in, spec_out = prog.io()
    out = []
    for kind, declared, wanted in (("input", spec_in, entry.get("inputs", [])), ("output", spec_out, entry.get("outputs", []))):
        if [d["name"] for d in declared] != [w["name"] for w in wanted]:
            out.append(f"{kind}s {[d['name'] for d in declared]} in the spec, {[w['name'] for w in wanted]} in the manifest")
            continue
        for d, w in zip(declared, wanted):
            dyn = {int(k) for k in (w.get("dynamic") or {})}
            shape_ok = len(d["shape"]) == len(w["shape"]) and all(
                i in dyn or a == b for i, (a, b) in enumerate(zip(d["shape"], w["shape"])))
            if not shape_ok:
                out.append(f"{kind} {w['name']!r}: shape {tuple(d['shape'])} in the spec, {tuple(w['shape'])} in the manifest")
            # Core ML has no 64-bit integers: an int64 tensor is int32 in the spec (the runner casts back)
            if d["dtype"] != w.get("dtype", "float32") and (d["dtype"], w.get("dtype")) != ("int32", "int64"):
                out.append(f"{kind} {w['name']!r}: dtype {d['dtype']} in the spec, {w.get('dtype')} in the manifest")
    return out


def _weight_problems(bundle, package_rel: str) -> tuple[int, list[str]]:
    from edgeth.io_utils import sha256_file

    folder = bundle.root / package_rel / WEIGHT_DIR
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    out = []
    for f in files:
        rel = f.relative_to(bundle.root).as_posix()
        want = bundle.manifest.get("files", {}).get(rel)
        if want is None:
            out.append(f"weight file {rel} is not in the manifest's file table")
        elif sha256_file(f) != want:
            out.append(f"weight file {rel} does not match its sha256 in the manifest")
    return len(files), out


def program_check(bundle, name: str):
    """The `structure/<name>` Check of one Core ML program."""
    from edgeth.errors import EdgethError
    from edgeth.runtime_py.parity import Check
    from edgeth.targets.coreml.sim.program import SimProgram

    entry = bundle.entry(name, "coreml")
    rel = f"coreml/{entry['files'][0]}"
    try:
        prog = SimProgram(bundle.root / rel, name, compile=False)  # an op coreml-sim lacks is no structural fault
    except EdgethError as e:
        return Check(f"structure/{name}", {"loads": False}, False, e.what)
    problems = io_problems(prog, entry)
    outside = prog.ops_outside_target()
    problems += [f"op {t!r} is not defined for deployment target {prog.opset()}" for t in outside]
    n_weights, weight_bad = _weight_problems(bundle, rel)
    problems += weight_bad
    ops = prog.op_counts()
    metrics = {"loads": True, "ops": sum(ops.values()), "op_types": len(ops), "weight_files": n_weights,
               "problems": len(problems)}
    worst = problems[0] if problems else (f"spec loads; I/O match the manifest; {len(ops)} op types within "
                                          f"{prog.opset()}; {n_weights} weight file(s) hash as recorded")
    return Check(f"structure/{name}", metrics, not problems, worst, detail={"problems": problems, "mil_ops": ops})


def structure_checks(bundle) -> list:
    """One structural Check per program with a Core ML artifact."""
    return [program_check(bundle, n) for n in bundle.program_names if "coreml" in bundle.program(n)["artifacts"]]
