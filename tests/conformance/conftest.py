"""Conformance fixtures: one export per (family, precision), shared by every target's case."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Short golden clips and few recorded calls keep 3 families x 4 targets x 5 precisions inside
# CI's budget; the mixed search is held to a budget a correct export meets with few float layers.
GOLDEN_CALLS = 2
MIXED_BUDGET = {"frames": "frames:psnr=30"}


@dataclass
class Exported:
    bundles: dict[str, Path] = field(default_factory=dict)  # target -> bundle folder
    fails: dict[str, str] = field(default_factory=dict)  # target -> why its export failed


@pytest.fixture(scope="session")
def conformance_export(family_run, tmp_path_factory):
    from edgeth.build import target_precisions
    from edgeth.bundle.export import export_bundle
    from edgeth.errors import EdgethError
    from edgeth.targets import get_target, target_names

    done: dict[tuple[str, str], Exported] = {}
    cache = tmp_path_factory.mktemp("conformance-calibration")

    def export(family: str, precision: str) -> Exported:
        key = (family, precision)
        if key in done:
            return done[key]
        run = family_run(family)
        targets = [t for t in target_names() if get_target(t).available().ok and precision in target_precisions(t)]
        root = tmp_path_factory.mktemp(f"conf-{family}-{precision}")
        quantize = {"cache_dir": cache, "calib_clips": 1}
        if precision == "mixed":
            quantize["budget"] = MIXED_BUDGET["frames"]

        def one(ts: list[str], out: Path) -> Path:
            export_bundle(run, out, model=family, targets=ts, precision=precision, golden_calls=GOLDEN_CALLS,
                          progress=False, quantize=dict(quantize))
            return out

        res = Exported()
        try:
            path = one(targets, root / "all")
            res.bundles = {t: path for t in targets}
        except EdgethError as e:
            if len(targets) == 1:
                res.fails[targets[0]] = e.message()
            else:  # one target spoiled the joint bundle: each alone, so the failure is its own
                for t in targets:
                    try:
                        res.bundles[t] = one([t], root / t)
                    except EdgethError as e1:
                        res.fails[t] = e1.message()
        done[key] = res
        return res

    return export


def pytest_sessionfinish(session, exitstatus):
    import os

    if os.environ.get("EDGETH_RECORD_CONFORMANCE", "") in ("", "0"):
        return
    from results import RESULTS

    from edgeth.conformance import write_record

    if RESULTS:
        write_record(RESULTS)
