"""Shared pytest fixtures (each block belongs to one area; edit surgically)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Helper modules that live in tests/ (e.g. bundle_support) are importable by name.
sys.path.insert(0, str(Path(__file__).resolve().parent))


# -- bundles (edgeth.bundle / runtime_py): the small `bundlefix` family, exported once ----
@pytest.fixture(scope="session")
def fixture_bundle(tmp_path_factory) -> dict:
    """{"run", "bundle", "tar", "root"}: the tests' fixture family exported for every runnable target."""
    import bundle_support

    return bundle_support.build_bundle(tmp_path_factory.mktemp("bundlefix"))
