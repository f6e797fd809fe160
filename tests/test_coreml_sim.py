"""coreml-sim: the numpy interpreter of the Core ML ML Program (a simulation, not Core ML).

Fixture programs at every precision against PyTorch; FP16 overflow and a swapped-input
conversion caught; an unknown op named; structural checks; `edgeth verify --backend coreml-sim`.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import bundle_support as bs
from edgeth.errors import UnsupportedOp
from edgeth.program import Program, TensorSpec
from edgeth.quantize.plan import PrecisionPlan
from edgeth.targets import get_target
from edgeth.targets.common import runner_entry
from fixture_programs import fixture_programs
from edgeth.tolerances import tolerance_for

pytestmark = pytest.mark.skipif(not get_target("coreml").available().ok, reason="coremltools is not installed")
PRECISIONS = ("fp32", "fp16", "int8-weights", "int8", "mixed")
MIXED_FLOAT = {"renderer": ("flow",), "denoiser": ("out", "block.attn")}


def _samples(p, n=8, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(tuple((rng.random(s.shape) if s.kind == "image" else rng.standard_normal(s.shape)).astype(np.float32)
                       for s in p.inputs) for _ in range(n))


def _sim(p, art, d):
    from edgeth.targets.coreml.sim import make_runner

    return make_runner(d, runner_entry(p, art))


def _reference(p, xs):
    with torch.no_grad():
        return p.module(*[torch.from_numpy(x) for x in xs]).numpy()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.set_num_threads(1)
    out = {}
    for prec in PRECISIONS:
        for p in fixture_programs():
            d = tmp_path_factory.mktemp(f"sim-{prec}-{p.name}")
            plan = None if prec == "fp32" else PrecisionPlan(prec, MIXED_FLOAT[p.name] if prec == "mixed" else (),
                                                             calibration=_samples(p))
            out[(prec, p.name)] = (p, d, get_target("coreml").export(p, plan, d))
    return out


def test_every_fixture_program_every_precision_matches_torch(exported):
    from edgeth.runtime_py import parity

    for (prec, name), (p, d, art) in exported.items():
        run = _sim(p, art, d)
        for x in _samples(p, 2, seed=7):  # inputs the calibration never saw
            (y,) = run(*x)
            kind = p.outputs[0].kind
            c = parity.compare(kind, _reference(p, x), y, tolerance_for(prec, kind))
            assert c.passed, f"coreml-sim {prec} {name}: {c.worst}"
            assert y.dtype == np.float32
        if prec == "fp32":  # FP32 programs are evaluated in float32 throughout: near-exact
            assert np.abs(y - _reference(p, x)).max() <= 1e-5
        if prec == "fp16":  # ... and FP16 ones really round to fp16 between ops
            assert 1e-5 < np.abs(y - _reference(p, x)).max() < 1e-2


def test_coreml_sim_matches_core_ml_itself_on_macos(exported, capsys):
    """Where Core ML's predict() exists (macOS), every fixture program at every precision runs
    both ways, CPU_ONLY, and the gap is printed (`pytest -s`) and held to the gate-1 (RUNTIME)
    bound that Core ML bundles exported on Linux are judged by against coreml-sim's outputs."""
    from edgeth.runtime_py import parity
    from edgeth.tolerances import runtime_for

    t = get_target("coreml")
    if not t.runtime_available().ok:
        pytest.skip(f"needs Core ML itself: {t.runtime_available().reason}")
    import coremltools as ct

    for (prec, name), (p, d, art) in exported.items():
        sim = _sim(p, art, d)
        pkg = d / next(f for f in art.files if f.endswith(".mlpackage"))
        model = ct.models.MLModel(str(pkg), compute_units=ct.ComputeUnit.CPU_ONLY)
        for x in _samples(p, 2, seed=7):
            (y_sim,) = sim(*x)
            y_ml = np.asarray(next(iter(model.predict({s.name: a for s, a in zip(p.inputs, x)}).values())), np.float32)
            kind = p.outputs[0].kind
            c = parity.compare(kind, y_sim, y_ml.reshape(y_sim.shape), runtime_for(prec, kind))
            with capsys.disabled():
                print(f"coreml-sim vs Core ML CPU_ONLY {prec} {name}: {c.worst}")
            assert c.passed, f"{prec} {name}: {c.worst}"


class _Overflow(torch.nn.Module):
    """(1000 x)^2 / 1e6 = x^2: fine in FP32, inf in FP16 once |1000 x| > 256."""

    def forward(self, x):
        return (x * 1000.0) * (x * 1000.0) / 1e6


class _Diff(torch.nn.Module):
    def forward(self, a, b):
        return a - 2 * b


def _program(name, module, n_inputs=1):
    specs = [TensorSpec(n, (1, 8)) for n in "ab"[:n_inputs]] if n_inputs > 1 else [TensorSpec("x", (1, 8))]
    return Program(name, module.eval(), specs, [TensorSpec("y", (1, 8))], tuple(torch.randn(1, 8) for _ in specs))


def test_fp16_overflow_shows_up_as_on_device(tmp_path):
    from edgeth.runtime_py import parity

    p = _program("overflow", _Overflow())
    x = np.linspace(-1, 1, 8, dtype=np.float32)[None]
    for prec, ok in (("fp32", True), ("fp16", False)):
        art = get_target("coreml").export(p, None if prec == "fp32" else PrecisionPlan(prec), tmp_path / prec)
        (y,) = _sim(p, art, tmp_path / prec)(x)
        assert parity.compare("tensor", _reference(p, [x]), y, tolerance_for(prec, "tensor")).passed == ok
    assert np.isinf(y[0, 0]) and np.isfinite(y[0, 4])  # |1000 x| = 1000 overflows, 143 does not


def test_swapped_input_conversion_is_caught(tmp_path):
    """An artifact converted with its inputs swapped runs, and parity against the program fails."""
    from edgeth.runtime_py import parity

    p = _program("diff", _Diff(), 2)
    wrong = _program("diff", _Diff(), 2)
    wrong.module = type("Swapped", (torch.nn.Module,), {"forward": lambda self, a, b: _Diff()(b, a)})().eval()
    art = get_target("coreml").export(wrong, None, tmp_path)
    a, b = (np.random.default_rng(i).standard_normal((1, 8)).astype(np.float32) for i in range(2))
    (y,) = _sim(p, art, tmp_path)(a, b)
    assert not parity.compare("tensor", _reference(p, [a, b]), y, tolerance_for("fp32", "tensor")).passed
    np.testing.assert_allclose(y, b - 2 * a, atol=1e-6)


def test_unknown_op_is_an_error_naming_op_and_program(exported, monkeypatch):
    from edgeth.targets.coreml.sim import ops

    p, d, art = exported[("fp32", "renderer")]
    monkeypatch.delitem(ops.OPS, "resample")
    with pytest.raises(UnsupportedOp, match=r"coreml-sim does not implement MIL op 'resample' .*program 'renderer'"):
        _sim(p, art, d)


def test_unsimulated_op_variant_is_an_error(exported, monkeypatch):
    from edgeth.targets.coreml.sim import ops, ops_nn

    p, d, art = exported[("fp32", "renderer")]
    run = _sim(p, art, d)
    step = next(s for s in run.program.steps if s.op_type == "resample")
    monkeypatch.setitem(step.params, "padding_mode", "reflection")
    with pytest.raises(UnsupportedOp, match="'resample' with resample padding_mode 'reflection'"):
        run(*_samples(p, 1)[0])
    assert ops.OPS["resample"] is ops_nn.resample


@pytest.fixture(scope="module")
def _family():
    with bs.registered():
        yield


def test_verify_on_coreml_sim_is_labelled_a_simulation(fixture_bundle, _family, tmp_path):
    r = bs.cli("verify", str(fixture_bundle["bundle"]), "--backend", "coreml-sim", "--junit", str(tmp_path / "j.xml"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "simulation of Core ML semantics, not Core ML" in r.stdout
    for name in ("structure/denoiser", "structure/renderer", "quality/renderer/frame", "quality/pipeline/frames"):
        assert f"ok   {name}" in r.stdout
    assert "simulation of Core ML semantics" in (tmp_path / "j.xml").read_text()
    t = bs.cli("targets")
    assert "coreml-sim (numpy simulation of Core ML semantics, not Core ML) runs here" in t.stdout


def test_structure_checks_catch_io_and_weight_mismatches(fixture_bundle):
    from edgeth.bundle.io import load_bundle
    from edgeth.targets.coreml.sim import structure_checks

    b = load_bundle(fixture_bundle["bundle"])
    assert all(c.passed for c in structure_checks(b))
    b.program("renderer")["inputs"][1]["shape"] = [1, 17]
    b.manifest["files"] = {k: ("0" * 64 if k.startswith("coreml/denoiser") and k.endswith(".bin") else v)
                           for k, v in b.manifest["files"].items()}
    bad = {c.name: c for c in structure_checks(b)}
    assert not bad["structure/renderer"].passed and "input 'code': shape (1, 16)" in bad["structure/renderer"].worst
    assert not bad["structure/denoiser"].passed and "does not match its sha256" in bad["structure/denoiser"].worst


def test_contract_ops_are_all_implemented(exported):
    from edgeth.targets.coreml.sim.ops import CONTRACT, OPS

    assert not [op for op in CONTRACT if op not in OPS and op != "const"]
    emitted = {op for _, _, art in exported.values() for op in art.report["mil_ops"]}
    assert emitted <= set(CONTRACT), emitted - set(CONTRACT)


def test_pooling_ops_match_pytorch(tmp_path):
    """avg_pool (with and without padding in the average) and max_pool, as MDCF's encoder emits them."""
    import importlib

    import torch

    from edgeth.program import Program, TensorSpec
    from edgeth.targets import get_target
    from edgeth.targets.common import runner_entry

    class Pools(torch.nn.Module):
        def forward(self, x):
            f = torch.nn.functional
            return (f.avg_pool2d(x, 2), f.max_pool2d(x, 3, stride=1, padding=1),
                    f.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False),
                    f.avg_pool2d(x, 3, stride=2, padding=1))

    x = torch.randn(1, 3, 8, 8)
    ref = Pools()(x)
    p = Program("pools", Pools().eval(), [TensorSpec("x", (1, 3, 8, 8))],
                [TensorSpec(f"y{i}", tuple(r.shape)) for i, r in enumerate(ref)], (x,))
    art = get_target("coreml").export(p, None, tmp_path)
    run = importlib.import_module("edgeth.targets.coreml.sim").make_runner(tmp_path, runner_entry(p, art), None)
    for got, want in zip(run(x.numpy()), ref):
        np.testing.assert_allclose(got, want.numpy(), atol=1e-6)
