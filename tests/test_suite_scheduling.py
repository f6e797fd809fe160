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
