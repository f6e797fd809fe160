"""The shared conformance suite: every registered model family x every target x every precision.

Per (family, precision) the family's tiny fixture run (ModelFamily.fixture_run) is exported
once for every target that takes the precision (a joint export; when one target spoils it,
each target is exported alone so the failure is its own). Each case then checks, for its
target:
  programs build -> preflight -> export   (the bundle loads, hashes verify, every program has
                                           an artifact for the target with this precision)
  golden parity per program               every golden call on the target's runtime, judged by
                                           the bundle's tolerances; programs whose inputs include
                                           a discrete (indices) tensor are fed the golden tokens,
                                           so this is the teacher-forced check that tells a token
                                           flip from a renderer error
  whole-pipeline replay                    recorded noise, every declared stage + the video
  bench smoke                              one timed call per program on the runtime
Targets that cannot run here, and precisions a target does not offer, are skipped only when
tests/conformance/skips.py declares it (with the reason); otherwise the case fails. A family
without a fixture_run fails. Statuses are checked against edgeth/conformance.json, which the
README's support matrix is generated from (EDGETH_RECORD_CONFORMANCE=1 rewrites it).
"""
from __future__ import annotations

import os

import pytest

from edgeth.conformance import case_id, load_record
from edgeth.models import model_names
from edgeth.quantize.plan import PRECISIONS
from edgeth.targets import target_names

from skips import declared_skip  # tests/conformance is on sys.path (its conftest)

RECORDING = os.environ.get("EDGETH_RECORD_CONFORMANCE", "") not in ("", "0")
from results import RESULTS  # noqa: E402 (shared with conftest, which writes the record)
CASES = [(f, t, p) for f in model_names() for t in target_names() for p in PRECISIONS]


def _conclude(case: str, status: str, reason: str = "") -> None:
    """Record the live status and hold it to the committed record (unless recording)."""
    RESULTS[case] = {"status": status, **({"reason": reason} if reason else {})}
    if RECORDING:
        return
    want = load_record()["cases"].get(case)
    assert want is not None, (f"{case} is not in edgeth/conformance.json: run "
                              "EDGETH_RECORD_CONFORMANCE=1 pytest tests/conformance and commit the record")
    assert want["status"] == status, (f"{case}: recorded {want['status']!r}, now {status!r} ({reason}); "
                                      "re-record with EDGETH_RECORD_CONFORMANCE=1 if this change is intended")


def _skip(case: str, condition: str) -> None:
    reason = declared_skip(case, condition)
    assert reason, f"{case}: {condition} here, and tests/conformance/skips.py declares no skip for it"
    _conclude(case, "skipped", reason)
    pytest.skip(reason)


@pytest.mark.parametrize("family,target,precision", CASES, ids=[case_id(*c) for c in CASES])
def test_conformance(family, target, precision, conformance_export):
    from edgeth.build import target_precisions
    from edgeth.bundle.io import load_bundle
    from edgeth.runtime_py.backends import backend_for_target
    from edgeth.runtime_py.verify import verify_bundle
    from edgeth.targets import get_target

    case = case_id(family, target, precision)
    tgt = get_target(target)
    if precision not in target_precisions(target):
        _skip(case, "unsupported")
    assert tgt.available().ok, f"{target} cannot export here: {tgt.available().reason}"

    exported = conformance_export(family, precision)
    assert target not in exported.fails, f"{case}: {exported.fails.get(target)}"
    bundle = load_bundle(exported.bundles[target])  # validates the manifest and every file hash
    for p in bundle.programs:
        art = p["artifacts"].get(target)
        assert art and art["files"], f"{case}: program {p['name']} has no {target} artifact"
        pinned = p.get("meta", {}).get("precision")
        assert art["precision"] == (pinned or precision) or precision == "mixed", (p["name"], art["precision"])
        assert (bundle.artifact_dir(target) / art["files"][0]).exists()

    if not tgt.runtime_available().ok:
        _skip(case, "no-runtime")
    backend = backend_for_target(target)
    rep = verify_bundle(bundle, backend)
    assert rep.passed, f"{case}: " + "; ".join(f"{c.name}: {c.worst}" for c in rep.failures)
    stages = {c.name for c in rep.checks if c.name.startswith("pipeline/")}
    spec = bundle.pipeline_spec()
    assert {f"pipeline/{s}" for s in spec.stage_names()} <= stages, (stages, spec.stage_names())
    assert {c.name.split("/")[1] for c in rep.checks if c.name.startswith("program/")} == set(bundle.program_names)

    from edgeth.bench.bundle import bench_bundle

    b = bench_bundle(bundle, backends=[backend], iters=1, pipeline_iters=1, max_seconds=0.2, peak_gflops=1.0,
                     pipeline=False, progress=False)
    timed = [r for r in b["programs"] if r["backend"] == backend]
    assert {r["program"] for r in timed} == set(bundle.program_names)
    assert all(r["latency_ms"]["p50"] > 0 for r in timed), timed
    _conclude(case, "passed")


def test_every_registered_family_has_a_fixture_run():
    """A family the suite cannot run fails here too (not only inside its cases)."""
    from edgeth.models import ModelFamily, get_model

    for name in model_names():
        fam = get_model(name)
        assert type(fam).fixture_run is not ModelFamily.fixture_run, f"family {name!r} has no fixture_run"
