"""make test's worker scheduling (tests/xdist_units.py work_unit): the target cases of one conformance
export must share a worker (else each worker repeats the export), other tests go by module."""
from xdist_units import work_unit

CONF = "tests/conformance/test_conformance.py::test_conformance"


def test_conformance_cases_of_one_export_share_a_unit():
    units = {t: work_unit(f"{CONF}[ifmdm/{t}/int8]") for t in ("coreml", "executorch", "onnx", "tensorrt")}
    assert len(set(units.values())) == 1, units
    assert work_unit(f"{CONF}[ifmdm/onnx/fp32]") != units["onnx"]  # another precision: another export
    assert work_unit(f"{CONF}[mdcf/onnx/int8]") != units["onnx"]  # another family


def test_other_tests_go_by_module():
    assert work_unit("tests/test_bundle.py::test_a") == work_unit("tests/test_bundle.py::test_b[x]") == "tests/test_bundle.py"
    assert work_unit("tests/conformance/test_conformance.py::test_every_registered_family_has_a_fixture_run") == \
        "tests/conformance/test_conformance.py"


def test_long_units_are_dispatched_first_and_exist():
    """Conformance FP32 exports, then the declared long modules (longest first), then the rest,
    so the run does not end on a long unit while the other worker idles."""
    from pathlib import Path

    from xdist_units import LONG_MODULES, dispatch_rank

    ids = ["tests/test_bundle.py::test_a", f"{CONF}[ifmdm/onnx/int8]", "tests/test_quantize.py::test_q",
           "tests/test_data_learnable.py::test_p", f"{CONF}[mdcf/coreml/fp32]"]
    assert sorted(ids, key=dispatch_rank) == [f"{CONF}[mdcf/coreml/fp32]", "tests/test_data_learnable.py::test_p",
                                              "tests/test_quantize.py::test_q", "tests/test_bundle.py::test_a",
                                              f"{CONF}[ifmdm/onnx/int8]"]
    root = Path(__file__).resolve().parents[1]
    assert all((root / m).is_file() for m in LONG_MODULES), [m for m in LONG_MODULES if not (root / m).is_file()]
