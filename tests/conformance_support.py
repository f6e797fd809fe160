"""The conformance suite's machinery (tests/conformance uses it for every registered family; a
test may run it on a family it registers itself, see test_contract.py).

  make_exporter(run_for, tmp_path_factory) -> export(family, precision) -> Exported
      one export of the family's fixture run per precision for every target that takes it (a
      joint export; when one target spoils it, each target alone so the failure is its own)
  run_case(family, target, precision, export) -> ("passed" | "skipped", reason)
      programs build -> preflight -> export -> golden parity per program (programs fed golden
      tokens: the teacher-forced check) -> whole-pipeline replay -> bench smoke; raises
      AssertionError on a failure, returns "skipped" only for a skip declared in skips.py
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent / "conformance"))
from skips import declared_skip  # noqa: E402 (the declared skips, as data)

# Short golden clips and few recorded calls keep families x targets x precisions inside CI's
# budget; the mixed search is held to a budget a correct export meets with few float layers.
GOLDEN_CALLS = 2
MIXED_BUDGET = "frames:psnr=30"


@dataclass
class Exported:
    bundles: dict[str, Path] = field(default_factory=dict)  # target -> bundle folder
    fails: dict[str, str] = field(default_factory=dict)  # target -> why its export failed


def make_exporter(run_for: Callable[[str], Path], tmp_path_factory, mixed_budget: str = MIXED_BUDGET):
    from edgeth.bundle.export import export_bundle
    from edgeth.errors import EdgethError
    from edgeth.targets import get_target, target_names

    from shared_once import run_root

    done: dict[tuple[str, str], Exported] = {}
    # calibration captures and lowered programs shared by the run's xdist workers: a graph that
    # several (family, precision) exports share (programs pinned to FP32, a mixed plan equal to
    # INT8) is lowered once (edgeth.targets.lowering_cache)
    cache = run_root(tmp_path_factory) / "shared" / "conformance-calibration"
    lowered = run_root(tmp_path_factory) / "shared" / "lowering-cache"

    def export(family: str, precision: str) -> Exported:
        key = (family, precision)
        if key in done:
            return done[key]
        run = run_for(family)
        targets = [t for t in target_names() if get_target(t).available().ok and precision in get_target(t).precisions()]
        root = tmp_path_factory.mktemp(f"conf-{family}-{precision}")
        quantize = {"cache_dir": cache, "calib_clips": 1, **({"budget": mixed_budget} if precision == "mixed" else {})}

        def one(ts: list[str], out: Path) -> Path:
            export_bundle(run, out, model=family, targets=ts, precision=precision, golden_calls=GOLDEN_CALLS,
                          progress=False, quantize=dict(quantize), cache=lowered)
            return out

        res = Exported()
        try:
            path = one(targets, root / "all")
            res.bundles = {t: path for t in targets}
        except EdgethError as e:
            if len(targets) == 1:
                res.fails[targets[0]] = e.message()
            else:
                for t in targets:
                    try:
                        res.bundles[t] = one([t], root / t)
                    except EdgethError as e1:
                        res.fails[t] = e1.message()
        done[key] = res
        return res

    return export


def run_case(family: str, target: str, precision: str, export) -> tuple[str, str]:
    from edgeth.bench.bundle import bench_bundle
    from edgeth.bundle.io import load_bundle
    from edgeth.conformance import case_id
    from edgeth.runtime_py.verify import verify_bundle
    from edgeth.targets import get_target

    case = case_id(family, target, precision)
    tgt = get_target(target)
    if declared_skip(case, "unverified"):
        return _declared(case, "unverified")
    if precision not in tgt.precisions():
        return _declared(case, "unsupported")
    assert tgt.available().ok, f"{target} cannot export here: {tgt.available().reason}"
    exported = export(family, precision)
    assert target not in exported.fails, f"{case}: {exported.fails.get(target)}"
    bundle = load_bundle(exported.bundles[target])  # validates the manifest and every file hash
    for p in bundle.programs:
        art = p["artifacts"].get(target)
        assert art and art["files"], f"{case}: program {p['name']} has no {target} artifact"
        pinned = p.get("meta", {}).get("precision")
        assert precision == "mixed" or art["precision"] == (pinned or precision), (p["name"], art["precision"])
        assert (bundle.artifact_dir(target) / art["files"][0]).exists()
    if not tgt.runtime_available().ok:
        from edgeth.runtime_py.backends import simulator_for

        sim = simulator_for(target)
        if sim is None:
            return _declared(case, "no-runtime")
        status, reason = _declared(case, "no-runtime")
        rep = verify_bundle(bundle, sim, pipeline=False)  # programs + structure, labelled a simulation
        _assert_clean(case, rep)
        return "simulated", f"{reason}; programs pass on {sim} (a simulation, not the runtime)"

    rep = verify_bundle(bundle, tgt.backend)
    _assert_clean(case, rep)
    from bundle_support import gate1_across_executions

    bad = gate1_across_executions(bundle, target, full=False)  # issue 19: the bounds hold between real runs
    assert not bad, f"{case}: gate 1 does not hold across executions of one artifact: " + "; ".join(bad[:4])
    if tgt.backend == "onnxruntime":  # what a CPU without VNNI runs must load too (targets/onnx/runner.py)
        from edgeth.targets.onnx.runner import session

        for p in bundle.programs:
            session(bundle.artifact_dir(target) / p["artifacts"][target]["files"][0], exact=True)
    spec = bundle.pipeline_spec()
    judged = {c.name for c in rep.checks}
    assert {f"quality/pipeline/{s}" for s in spec.stage_names()} <= judged, (judged, spec.stage_names())
    for gate in ("runtime", "quality"):
        assert {c.name.split("/")[1] for c in rep.checks if c.name.startswith(f"{gate}/") and "/pipeline/" not in c.name
                and "/bundled/" not in c.name} == set(bundle.program_names), (gate, judged)
    b = bench_bundle(bundle, backends=[tgt.backend], iters=1, pipeline_iters=1, max_seconds=0.2, peak_gflops=1.0,
                     pipeline=False, progress=False, memory=False)
    timed = [r for r in b["programs"] if r["backend"] == tgt.backend]
    assert {r["program"] for r in timed} == set(bundle.program_names), timed
    return "passed", ""


def _assert_clean(case: str, rep) -> None:
    """Gate 1 (device == host) must pass; gate 2 (quality vs FP32) is the fixture's quality, not the
    toolchain's: a tiny briefly-trained fixture only has to clear the "broken export" floor."""
    from edgeth.runtime_py.gates import budget_only

    assert not rep.failures or budget_only(rep.failures), f"{case}: " + "; ".join(
        f"{c.name}: {c.worst}" for c in rep.failures if not budget_only([c]))




def _declared(case: str, condition: str) -> tuple[str, str]:
    reason = declared_skip(case, condition)
    assert reason, f"{case}: {condition} here, and tests/conformance/skips.py declares no skip for it"
    return "skipped", reason
