"""Conformance fixtures: one export per (family, precision), shared by every target's case."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def conformance_export(family_run, tmp_path_factory):
    from conformance_support import make_exporter

    return make_exporter(family_run, tmp_path_factory)


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("EDGETH_RECORD_CONFORMANCE", "") in ("", "0"):
        return
    from results import RESULTS

    from edgeth.conformance import write_record

    if RESULTS:  # each xdist worker merges its own cases into the record, one at a time
        from shared_once import locked

        with locked(Path(__file__).resolve().parents[2] / ".conformance-record.lock"):
            write_record(RESULTS)
