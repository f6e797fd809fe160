"""Every target x precision on the fixture programs: export -> run -> parity within the precision's tolerance."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeth.errors import UnsupportedOp
from edgeth.quantize.plan import PrecisionPlan
from edgeth.targets import get_target
from fixture_programs import fixture_programs
from edgeth.tolerances import tolerance_for

PRECISIONS = ("fp16", "int8", "int8-weights", "mixed")
MIXED_FLOAT = {"renderer": ("flow",), "denoiser": ("out", "block.attn")}


def _samples(p, n=8, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(tuple((rng.random(s.shape) if s.kind == "image" else rng.standard_normal(s.shape)).astype(np.float32)
                       for s in p.inputs) for _ in range(n))


def _plan(p, precision):
    return PrecisionPlan(precision, MIXED_FLOAT[p.name] if precision == "mixed" else (), calibration=_samples(p))


def _entry(p, art):
    from edgeth.targets.common import runner_entry

    return runner_entry(p, art)


@pytest.fixture(scope="module")
def programs():
    torch.set_num_threads(1)
    return fixture_programs()


def _exported(programs, target, tmp_path_factory):
    t = get_target(target)
    if not t.available().ok:
        pytest.skip(f"{target} cannot export here: {t.available().reason}")
    out = {}
    for prec in PRECISIONS:
        for p in programs:
            d = tmp_path_factory.mktemp(f"{target}-{prec}-{p.name}")
            try:
                out[(prec, p.name)] = (p, d, t.export(p, _plan(p, prec), d))
            except UnsupportedOp as e:
                out[(prec, p.name)] = (p, d, e)
    return out


@pytest.mark.parametrize("target", ["executorch", "onnx"])
def test_round_trip_parity_per_precision(programs, target, tmp_path_factory):
    from edgeth.runtime_py import parity

    t = get_target(target)
    for (prec, name), (p, d, art) in _exported(programs, target, tmp_path_factory).items():
        assert not isinstance(art, Exception), f"{target} {prec} {name}: {art}"
        assert art.precision == prec
        if target == "executorch" and name == "renderer":  # each precision's own lowering: sampler rewritten
            assert art.report["portable_ops"].get("aten.index_select") == 4, (prec, art.report["portable_ops"])
            assert "aten.grid_sampler_2d" not in art.report["portable_ops"], prec
        q = art.report["quantization"]
        assert q["precision"] == prec
        if prec in ("int8", "mixed"):
            assert q["calibration"].startswith("pipeline capture (8 samples)")
        if prec == "mixed" and target == "executorch":
            assert "out" in q["float_units"] if name == "denoiser" else q["float_units"] == ["flow"]
        if prec == "int8-weights" and target == "executorch":
            assert q["int8_units"] > 0 and "dynamic" in q["scheme"]
        run = t.runner(d, _entry(p, art), threads=1)
        for x in _samples(p, 2, seed=7):  # inputs the calibration never saw
            (y,) = run(*x)
            with torch.no_grad():
                ref = p.module(*[torch.from_numpy(a) for a in x]).numpy()
            kind = p.outputs[0].kind
            c = parity.compare(kind, ref, y, tolerance_for(prec, kind))
            assert c.passed, f"{target} {prec} {name}: {c.worst}"


def test_int8_weights_are_int8_in_the_pte(tmp_path):
    from edgeth.program import Program, TensorSpec

    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 64)).eval()
    p = Program("mlp", m, [TensorSpec("x", (4, 256))], [TensorSpec("y", (4, 64))], (torch.randn(4, 256),))
    t = get_target("executorch")
    fp32 = t.export(p, None, tmp_path / "a")
    for prec in ("int8", "int8-weights"):
        art = t.export(p, _plan(p, prec) if prec == "int8" else PrecisionPlan(prec), tmp_path / prec)
        assert art.report["size_bytes"] < 0.35 * fp32.report["size_bytes"], prec  # ~1/4 of the FP32 weights
        assert art.report["quantization"]["int8_units"] == 2


def test_tensorrt_recipes_carry_qdq_models_and_flags(programs, tmp_path):
    import json

    from edgeth.quantize.onnx_qdq import check_qdq

    t = get_target("tensorrt")
    if not t.available().ok:
        pytest.skip(t.available().reason)
    p = programs[0]
    for prec, flags in (("fp16", ["--fp16"]), ("int8", ["--int8"]), ("mixed", ["--int8"])):
        d = tmp_path / prec
        art = t.export(p, _plan(p, prec), d)
        rec = json.loads((d / f"{p.name}.trt.json").read_text())
        assert rec["flags"] == flags and rec["precision"] == prec
        if prec != "fp16":
            assert check_qdq(str(d / art.files[0])) == []
            assert art.report["quantization"]["quantize_linear"] > 0
    with pytest.raises(UnsupportedOp, match="int8-weights is not available for target tensorrt"):
        t.export(p, _plan(p, "int8-weights"), tmp_path / "w")
    if not t.runtime_available().ok:
        pytest.skip(f"TensorRT engines build and run on the device only: {t.runtime_available().reason}")


def test_coreml_precisions_export_on_linux(programs, tmp_path_factory):
    t = get_target("coreml")
    for (prec, name), (p, d, art) in _exported(programs, "coreml", tmp_path_factory).items():
        assert not isinstance(art, Exception), f"coreml {prec} {name}: {art}"
        ops = art.report["mil_ops"]
        if prec in ("int8", "mixed"):  # W8A8: activations quantized in the graph (iOS17 ops)
            assert ops.get("quantize", 0) > 0 and art.report["deployment_target"] == "iOS17"
        if prec == "int8-weights" and name == "denoiser":  # weights compressed (small ones stay FP32)
            assert ops.get("constexpr_affine_dequantize", 0) + ops.get("constexpr_blockwise_shift_scale", 0) > 0
    if not t.runtime_available().ok:
        pytest.skip(f"Core ML predict is macOS-only: {t.runtime_available().reason}")


def test_an_equal_plan_reuses_the_quantized_artifact_and_another_plan_exports_anew(tmp_path, monkeypatch):
    """The mixed search exports its chosen plan to check it; the bundle then exports that plan again:
    Target.export keeps the first artifact's files and writes them, and lowers again only for a
    plan that differs (here: other calibration data)."""
    import edgeth.targets.onnx.exporter as onnx_exporter

    lowered = []
    real = onnx_exporter.export
    monkeypatch.setattr(onnx_exporter, "export", lambda *a, **k: lowered.append(a[1].name) or real(*a, **k))
    p = fixture_programs()[0]
    tgt = get_target("onnx")
    first = tgt.export(p, _plan(p, "int8"), tmp_path / "a")
    again = tgt.export(p, _plan(p, "int8"), tmp_path / "b")  # equal plan, new PrecisionPlan object
    assert lowered == [p.name]
    assert again.files == first.files and again.report == first.report and again.report is not first.report
    for f in first.files:
        assert (tmp_path / "b" / f).read_bytes() == (tmp_path / "a" / f).read_bytes()
    other = PrecisionPlan("int8", calibration=_samples(p, seed=1))
    tgt.export(p, other, tmp_path / "c")
    assert lowered == [p.name, p.name]
    assert any((tmp_path / "c" / f).read_bytes() != (tmp_path / "a" / f).read_bytes() for f in first.files)
