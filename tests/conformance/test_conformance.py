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
from results import RESULTS  # shared with conftest, which writes the record (tests/conformance on sys.path)

RECORDING = os.environ.get("EDGETH_RECORD_CONFORMANCE", "") not in ("", "0")
# Precision-major: make test's workers start on different families (each trains its own fixture).
CASES = [(f, t, p) for p in PRECISIONS for f in model_names() for t in target_names()]


def _conclude(case: str, status: str, reason: str = "") -> None:
    """Record the live status and hold it to the committed record (unless recording)."""
    RESULTS[case] = {"status": status, **({"reason": reason} if reason else {})}
    if RECORDING:
        return
    want = load_record()["cases"].get(case)
    if want is None:  # not recorded yet: the README matrix says "not run" for it until it is
        return
    assert want["status"] == status, (f"{case}: recorded {want['status']!r}, now {status!r} ({reason}); "
                                      "re-record with EDGETH_RECORD_CONFORMANCE=1 if this change is intended")


@pytest.mark.parametrize("family,target,precision", CASES, ids=[case_id(*c) for c in CASES])
def test_conformance(family, target, precision, conformance_export):
    from conformance_support import run_case

    status, reason = run_case(family, target, precision, conformance_export)
    _conclude(case_id(family, target, precision), status, reason)
    if status == "skipped":
        pytest.skip(reason)  # "simulated" passes: the simulator checked the programs


def test_every_registered_family_has_a_fixture_run():
    """A family the suite cannot run fails here too (not only inside its cases)."""
    from edgeth.models import ModelFamily, get_model

    for name in model_names():
        fam = get_model(name)
        assert type(fam).fixture_run is not ModelFamily.fixture_run, f"family {name!r} has no fixture_run"
