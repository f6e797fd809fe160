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


# Modules whose work is long and single-unit (seconds on 2 cores, fresh clone, 2026-12-03):
# dispatched right after the conformance FP32 exports (which also train each family's fixture),
# longest first, so that no long unit starts last and leaves the other worker idle at the end
# (the motion probe's fit started at ~700 s and made the run ~45 s longer than its work).
LONG_MODULES = (
    "tests/test_data_learnable.py",  # 102 s: fits the motion probe on a fresh machine
    "tests/test_targets_tensorrt.py",  # 61 s
    "tests/test_quantize_targets.py",  # 53 s
    "tests/test_crash_safety.py",  # 47 s
    "tests/test_quantize.py",  # 40 s
    "tests/test_lowering_cache.py",  # 34 s
)


def dispatch_rank(nodeid: str) -> int:
    """0: a conformance FP32 export (trains its family's fixture); 1: a LONG_MODULES module, in
    that list's order; then everything else (collection order is kept within a rank)."""
    unit = work_unit(nodeid)
    if unit.startswith("tests/conformance/test_conformance.py::") and unit.endswith("/fp32"):
        return 0
    module = nodeid.partition("::")[0]
    return 1 + LONG_MODULES.index(module) if module in LONG_MODULES else 1 + len(LONG_MODULES)
