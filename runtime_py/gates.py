"""Release gates: the two questions a verify check answers (bounds: edgeth/tolerances.py).

  runtime/<program>/<output>   gate 1, device == host: the artifact's outputs against its own
                               host outputs on the golden inputs (golden/<target>/<program>.npz,
                               see edgeth/bundle/expected.py), RUNTIME bounds of its precision
  runtime/bundled/<program>    gate 1 through ExecuTorch's own BundledProgram verifier (.bpte)
  quality/<program>/<output>   gate 2, against the FP32 PyTorch reference, QUALITY bounds
  quality/pipeline/<stage>     gate 2 on the pipeline replay: the bundle's budget per stage
                               (a mixed plan's `--budget`, else the recorded default budget)

"The phone runs it wrong" fails gate 1; "INT8 costs too much quality" fails gate 2. Each
quality check also says whether it clears the old "broken export" floor (detail.floor); the
floor never passes or fails a release. Bundles exported before gate 1 existed verify
gate 2 only, with a note.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from edgeth.runtime_py.parity import Check, judge

GATES = ("runtime", "quality")


def gate_of(check: Check) -> str:
    """"runtime", "quality" or "" (checks outside the gates, e.g. missing device outputs)."""
    head = check.name.split("/", 1)[0]
    return head if head in GATES else ""


def budget_only(checks: list[Check]) -> bool:
    """True when every failed check is a quality (gate 2) check that still clears the broken-export
    floor: the artifact runs as the host does and only misses the quality budget vs FP32 (the
    model's quantization error, not a broken export or runtime)."""
    failed = [c for c in checks if not c.passed and not c.skipped]
    return bool(failed) and all(gate_of(c) == "quality" and (c.detail.get("floor") or {}).get("passed")
                                for c in failed)


def gate_status(checks: list[Check]) -> dict[str, str]:
    """{gate: "pass" | "fail" | "n/a"} over the checks (skipped ones do not count)."""
    out = {}
    for g in GATES:
        mine = [c for c in checks if gate_of(c) == g and not c.skipped]
        out[g] = "n/a" if not mine else ("pass" if all(c.passed for c in mine) else "fail")
    return out


def _artifact(bundle, program: str, target: str | None) -> dict[str, Any]:
    return (bundle.program(program)["artifacts"].get(target or "") or {}) if target else {}


def _kind(bundle, program: str, output: str) -> str:
    return next(s.get("kind", "tensor") for s in bundle.program(program)["outputs"] if s["name"] == output)


def runtime_tolerance(bundle, program: str, output: str, target: str) -> dict[str, float]:
    from edgeth.tolerances import runtime_for

    art = _artifact(bundle, program, target)
    rec = ((art.get("gates") or {}).get("runtime") or {}).get(output)
    return dict(rec) if rec is not None else runtime_for(art.get("precision", "fp32"), _kind(bundle, program, output))


def quality_tolerance(bundle, program: str, output: str, target: str | None) -> dict[str, float]:
    """Recorded at export, else the QUALITY row of the artifact's precision (the fp32 row for torch)."""
    from edgeth.tolerances import quality_for

    art = _artifact(bundle, program, target)
    if not art:
        return bundle.tolerance(program, output, None)
    rec = ((art.get("gates") or {}).get("quality") or {}).get(output)
    return dict(rec) if rec is not None else quality_for(art.get("precision", "fp32"), _kind(bundle, program, output))


def stage_quality_tolerance(bundle, stage: str, target: str | None) -> dict[str, float]:
    """Gate 2 of a pipeline stage: the target's recorded quality bound (its budget), else the
    QUALITY row of the stage's kind overridden by a mixed plan's recorded budget."""
    from edgeth.quantize.budget import budget_tolerances
    from edgeth.tolerances import quality_for

    t = bundle.manifest["targets"].get(target or "") if target else None
    if not t:
        return bundle.stage_tolerance(stage, None)
    if stage in (t.get("quality") or {}):
        return dict(t["quality"][stage])
    prec = t.get("precision", "fp32")
    tol = quality_for(prec, bundle.pipeline_spec().stage_kind(stage))
    if prec == "mixed":
        mixed = ((bundle.manifest.get("quantization") or {}).get("mixed") or {}).get("mixed") or {}
        tol.update(budget_tolerances(mixed.get("budget")).get(stage, {}))
    return tol


def with_floor(check: Check, floor: dict[str, float]) -> Check:
    """Note on a quality check whether it clears the "broken export" floor (never its verdict)."""
    measured = {k: v for k, v in floor.items() if k in check.metrics}
    if not measured or check.skipped or not check.metrics:
        return check
    ok, _ = judge(check.metrics, measured)
    check.detail["floor"] = {"passed": ok, "tolerance": measured}
    if not check.passed:
        check.worst += " (above the broken-export floor)" if ok else " (below the broken-export floor too)"
    return check


Pair = tuple[int, list, list]  # (call index, reference outputs, got outputs)


def compare_calls(bundle, program: str, pairs: list[Pair], tol_of: Callable[[str], dict[str, float]],
                  prefix: str, n_calls: int) -> list[Check]:
    """One check per output over the calls in `pairs` (the check keeps the worst call)."""
    from edgeth.runtime_py.parity import compare
    from edgeth.runtime_py.verify import output_kinds, worst_of

    checks = []
    for j, (out_name, kind) in enumerate(output_kinds(bundle, program)):
        tol = tol_of(out_name)
        per_call = []
        for i, ref, got in pairs:
            c = compare(kind, ref[j], got[j], tol, name=f"{prefix}/{program}/{out_name}")
            c.detail["call"] = i
            per_call.append(c)
        w = worst_of(per_call)
        w.detail["calls"] = len(per_call)
        if n_calls > 1:
            w.worst = f"{w.worst} (call {w.detail['call']} of {n_calls})"
        checks.append(w)
    return checks


def program_checks(bundle, program: str, target: str | None, got_calls: list, calls: list) -> list[Check]:
    """runtime/… (when the bundle has this artifact's expected outputs) and quality/… checks;
    `got_calls[i]` is None for a call the device did not dump."""
    from edgeth.bundle.expected import load_expected

    checks = []
    expected = load_expected(bundle, program, target)
    if expected is not None:
        pairs = [(i, e, g) for i, (e, g) in enumerate(zip(expected, got_calls)) if g is not None]
        checks += compare_calls(bundle, program, pairs, lambda o: runtime_tolerance(bundle, program, o, target),
                                "runtime", len(calls))
    pairs = [(i, ref, g) for i, ((_, ref), g) in enumerate(zip(calls, got_calls)) if g is not None]
    quality = compare_calls(bundle, program, pairs, lambda o: quality_tolerance(bundle, program, o, target),
                            "quality", len(calls))
    out_names = [s["name"] for s in bundle.program(program)["outputs"]]
    for c, o in zip(quality, out_names):
        with_floor(c, bundle.tolerance(program, o, target))
    return checks + quality


def bundled_atol(bundle, program: str, target: str) -> float:
    """The elementwise atol the BundledProgram verifier gets: the RUNTIME bound of each output in
    absolute terms (max_lsb8 steps of the expected output's range), the smallest over outputs."""
    from edgeth.bundle.expected import load_expected

    expected = load_expected(bundle, program, target) or []
    atols = []
    for j, spec in enumerate(bundle.program(program)["outputs"]):
        tol = runtime_tolerance(bundle, program, spec["name"], target)
        if "max_abs" in tol:
            atols.append(tol["max_abs"])
        elif "max_lsb8" in tol and expected:
            step = min(float(np.ptp(np.asarray(c[j], np.float64))) / 255.0 for c in expected)
            atols.append(tol["max_lsb8"] * step)
    return min(atols) if atols else 1e-4


def gate1_note(bundle, target: str | None, runs_here: bool = True, backend: str | None = None) -> str | None:
    """One line when gate 1 cannot be checked for `target`, or when what it compares with was
    computed by a simulator (Core ML artifacts exported on Linux); None otherwise. `backend`:
    the backend being verified, when it is not the target's own runtime (e.g. coreml-sim)."""
    if not target:
        return None
    rec = bundle.manifest["targets"].get(target, {})
    lacking = [p for p in bundle.program_names if not _artifact(bundle, p, target).get("expected")
               and _artifact(bundle, p, target)]
    sim = rec.get("simulated_at_export")
    if sim and rec.get("not_simulated") and lacking:
        why = next(iter(rec["not_simulated"].values()))
        return (f"note: gate 1 (runtime) not checked for {target} programs {', '.join(lacking)}: their runtime is absent "
                f"where they were exported and {sim} could not run them ({why}); gate 2 (quality) only")
    if not lacking:
        if not sim:
            return None
        if backend == sim:
            return (f"note: gate 1 (runtime) on {sim} compares it with its own outputs recorded at export (a "
                    f"determinism check); on a device it compares {target} with {sim}'s outputs of the same artifact")
        return (f"note: gate 1 (runtime) compares {target} with the outputs {sim} computed for the same artifacts at "
                f"export ({target}'s runtime was absent there): a simulation of {target} semantics, not {target} itself")
    if not rec.get("verified_at_export", True) or not runs_here:
        return (f"note: gate 1 (runtime) not checked for {target}: its artifacts were exported where they cannot "
                f"run, so the bundle has no host outputs of them; re-export on a host that runs {target}")
    return (f"note: gate 1 (runtime) not checked for {target}: this bundle has no per-artifact expected outputs "
            f"({', '.join(lacking)}); re-export it with this edgeth to check device == host; gate 2 (quality) only")
