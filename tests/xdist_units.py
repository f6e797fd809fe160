"""How make test's pytest-xdist workers split the suite (tests/conftest.py schedules by it)."""
from __future__ import annotations


def work_unit(nodeid: str) -> str:
    """The unit a worker takes whole: one per conformance (family, precision), whose target cases
    share one export; otherwise the test module, so module-scoped fixtures are built once."""
    module, _, name = nodeid.partition("::")
    if name.startswith("test_conformance[") and name.count("/") == 2:
        family, _target, precision = name[len("test_conformance["):-1].split("/")
        return f"{module}::{family}/{precision}"
    return module
