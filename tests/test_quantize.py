"""Quantization building blocks: PT2E scoping, calibration capture, Q/DQ shape, FP16 ONNX, FP16 audit."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from edgeth.errors import InputError
from fixture_programs import fixture_programs


def _samples(p, n=6, seed=0):
    rng = np.random.default_rng(seed)
    return [tuple((rng.random(s.shape) if s.kind == "image" else rng.standard_normal(s.shape)).astype(np.float32)
                  for s in p.inputs) for _ in range(n)]


@pytest.fixture(scope="module")
def programs():
    torch.set_num_threads(1)
    return {p.name: p for p in fixture_programs()}


# -- PT2E scoping -------------------------------------------------------------------------------
def test_float_layer_filter_keeps_convolutions_float_and_variants_match_direct_quantization(programs):
    from edgeth.quantize.pt2e import Calibrated, quantize_module, quantized_units

    p = programs["renderer"]
    cal = _samples(p)
    c = Calibrated(p.module, p.example_inputs, cal)
    assert [u.name for u in c.units] == ["enc.0", "code_proj", "add", "flow", "mul", "add_1", "head"]
    full = c.convert()
    assert set(quantized_units(full)) == {u.node for u in c.units}
    # module-path scoping must reach the convolution itself (weights carry no module path)
    part = c.convert(["flow", "add_1"])
    q = set(quantized_units(part))
    assert "conv2d_1" not in q and "add_1" not in q and "conv2d_2" in q
    w = next(n for n in part.graph.nodes if n.name == "conv2d_1").args[1]
    assert "dequantize" not in str(getattr(w, "target", ""))  # FP32 weight
    # a variant built from the shared calibration equals a fresh prepare/calibrate/convert
    x = tuple(torch.from_numpy(a) for a in cal[0])
    direct = quantize_module(p.module, p.example_inputs, cal, float_layers=["flow", "add_1"])
    assert torch.equal(part(*x), direct(*x))
    ref = p.module(*x)
    err_full = (full(*x) - ref).abs().max()
    assert 0 < err_full < 0.1


def test_unknown_float_layer_lists_the_layers(programs):
    from edgeth.quantize.pt2e import check_float_layers, export_graph

    gm = export_graph(programs["denoiser"].module, programs["denoiser"].example_inputs).module()
    check_float_layers(gm, ["block.attn", "out", "add_2"])  # module prefix, module, node: fine
    with pytest.raises(InputError, match="not in the program.*block.attn.qkv"):
        check_float_layers(gm, ["block.atn"])


def test_float_layers_fed_by_int8_tensors_lower_correctly_on_xnnpack(programs, tmp_path):
    """A float conv whose input is INT8 for its other consumers was mis-lowered by XNNPACK
    (SQNR -2 dB); the float layer now reads the float value and matches its simulation."""
    from edgeth.quantize.plan import PrecisionPlan
    from edgeth.runtime_py import parity
    from edgeth.targets import get_target

    p = programs["renderer"]
    cal = _samples(p)
    t = get_target("executorch")
    art = t.export(p, PrecisionPlan("mixed", float_layers=("flow",), calibration=tuple(cal)), tmp_path)
    assert art.report["quantization"]["float_units"] == ["flow"]
    run = t.runner(tmp_path, {"name": p.name, "files": art.files, "inputs": [s.to_json() for s in p.inputs],
                              "outputs": [s.to_json() for s in p.outputs]}, threads=1)
    with torch.no_grad():
        ref = p.module(*[torch.from_numpy(a) for a in cal[0]]).numpy()
    (got,) = run(*cal[0])
    assert parity.psnr_db(ref, got) > 40


# -- Q/DQ ONNX ------------------------------------------------------------------------------------
def _fp32_onnx(p, path):
    torch.onnx.export(p.module, p.example_inputs, str(path), dynamo=True, opset_version=18, external_data=False,
                      input_names=p.input_names, output_names=p.output_names, verbose=False)
    return path


@pytest.mark.parametrize("name", ["renderer", "denoiser"])
def test_qdq_int8_is_signed_zero_point_zero_everywhere(programs, tmp_path, name):
    import onnx
    from onnxruntime.quantization import QuantType, quantize_static

    from edgeth.quantize.onnx_qdq import _Reader, check_qdq, quantize_qdq
    from edgeth.targets.onnx.runner import session as onnx_session

    p = programs[name]
    src = _fp32_onnx(p, tmp_path / "fp32.onnx")
    cal = _samples(p)
    rep = quantize_qdq(src, tmp_path / "int8.onnx", cal)
    model = onnx.load(str(tmp_path / "int8.onnx"))
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert len(qdq) == rep["quantize_linear"] + rep["dequantize_linear"] > 10
    assert check_qdq(model) == []
    # ONNX Runtime's exact INT8 mode forced on: what a CPU without VNNI runs (targets/onnx/runner.py); it
    # refused models whose constants shared one DequantizeLinear until quantize_qdq unshared them
    sess = onnx_session(tmp_path / "int8.onnx", exact=True)
    (y,) = sess.run(None, dict(zip(p.input_names, cal[0])))
    with torch.no_grad():
        ref = p.module(*[torch.from_numpy(a) for a in cal[0]]).numpy()
    assert np.corrcoef(ref.ravel(), y.ravel())[0, 1] > 0.99
    # the check does fail on what TensorRT rejects: onnxruntime's default (uint8 activations)
    quantize_static(str(src), str(tmp_path / "u8.onnx"), _Reader(p.input_names, cal),
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    bad = check_qdq(str(tmp_path / "u8.onnx"))
    assert bad and any("uint8" in b for b in bad)


def test_qdq_float_layers_map_to_onnx_nodes(programs, tmp_path):
    import onnx

    from edgeth.quantize.onnx_qdq import nodes_for_layers, qdq_summary, quantize_qdq

    p = programs["denoiser"]
    src = _fp32_onnx(p, tmp_path / "fp32.onnx")
    nodes = nodes_for_layers(onnx.load(str(src)), ["block.attn.qkv"])
    assert nodes and all("linear_3" in n or "MatMul" in n for n in nodes)
    quantize_qdq(src, tmp_path / "all.onnx", _samples(p))
    quantize_qdq(src, tmp_path / "mixed.onnx", _samples(p), float_layers=["block.attn.qkv"])
    assert qdq_summary(tmp_path / "mixed.onnx")["int8_compute_nodes"] < qdq_summary(tmp_path / "all.onnx")["int8_compute_nodes"]


# -- FP16 ONNX on every registered model --------------------------------------------------------
def _registered_programs():
    from edgeth.models import get_model, model_names

    out = [(f"fixture/{p.name}", p) for p in fixture_programs()]
    for name in model_names():
        fam = get_model(name)
        if not hasattr(fam, "fresh"):
            continue
        run = fam.fresh("tiny")
        out += [(f"{name}/{p.name}", p) for p in fam.programs(run)]
    return out


def test_fp16_onnx_conversion_runs_every_registered_model(tmp_path):
    from edgeth.quantize.onnx_fp16 import convert_fp16
    from edgeth.runtime_py import parity
    from edgeth.targets.onnx.runner import session as onnx_session

    for label, p in _registered_programs():
        src = _fp32_onnx(p, tmp_path / "fp32.onnx")
        _, rep = convert_fp16(src, tmp_path / "fp16.onnx", keep_io_types=True)
        assert rep["fp16_nodes"] > 0 and rep["clipped_values"] == 0, label
        sess = onnx_session(tmp_path / "fp16.onnx")
        xs = [x.numpy() for x in p.example_inputs]
        outs = sess.run(None, dict(zip(p.input_names, xs)))
        with torch.no_grad():
            ref = p.module(*p.example_inputs)
        refs = ref if isinstance(ref, (tuple, list)) else (ref,)
        for r, g in zip(refs, outs):
            if not r.is_floating_point():  # token indices keep their integer dtype
                assert g.dtype.kind == "i" and parity.token_agreement(r.numpy(), g) >= 0.9, label
                continue
            assert g.dtype == np.float32, label  # I/O kept FP32
            assert parity.cosine(r.numpy(), g) > 0.999, label


# -- FP16 audit -----------------------------------------------------------------------------------
class _Wide(torch.nn.Module):
    """A transformer-ish block with a 256-wide LayerNorm and one layer that overflows FP16."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(16, 256)
        self.norm = torch.nn.LayerNorm(256)
        self.big = torch.nn.Sequential(torch.nn.Linear(256, 64), torch.nn.Linear(64, 8))  # huge inside, fine outside

    def forward(self, x):
        return self.big(self.norm(self.proj(x))) * 1.0


def _wide_program():
    from edgeth.program import Program, TensorSpec

    torch.manual_seed(0)
    m = _Wide().eval()
    with torch.no_grad():
        m.norm.weight.normal_(1, 0.2)
        m.big[0].weight.mul_(1e5)
        m.big[1].weight.mul_(1e-4)
    x = torch.randn(1, 50, 16) * 3
    return Program("wide", m, [TensorSpec("x", (1, 50, 16))], [TensorSpec("y", (1, 50, 8))], (x,))


def test_fp16_audit_flags_wide_layernorm_and_overflow_and_the_fix_is_correct_on_executorch(tmp_path):
    from edgeth.quantize.fp16_audit import audit_fp16, fp16_module
    from edgeth.quantize.plan import PrecisionPlan
    from edgeth.runtime_py import parity
    from edgeth.targets import get_target

    p = _wide_program()
    audit = audit_fp16(p)
    kinds = {(f.kind, f.severity) for f in audit.findings}
    assert ("layer_norm", "error") in kinds and ("overflow", "error") in kinds
    assert audit.unsafe_layernorm_modules() == ["norm"]
    assert "big" in audit.overflow_modules()
    module, audit2 = fp16_module(p)
    assert "norm" in audit2.fixed and "big (kept FP32)" in audit2.fixed
    # on the real backend: the audited FP16 export matches FP32; the plain half model does not
    t = get_target("executorch")
    art = t.export(p, PrecisionPlan("fp16"), tmp_path)
    assert art.report["quantization"]["fixed"] == ["norm", "big (kept FP32)"]
    run = t.runner(tmp_path, {"name": "wide", "files": art.files, "inputs": [s.to_json() for s in p.inputs],
                              "outputs": [s.to_json() for s in p.outputs]}, threads=1)
    (got,) = run(p.example_inputs[0].numpy())
    with torch.no_grad():
        ref = p.module(*p.example_inputs).numpy()
        naive = copy.deepcopy(p.module).half()(p.example_inputs[0].half()).float().numpy()
    assert not np.isfinite(naive).all() or parity.cosine(ref, naive) < 0.999  # what FP16 would have done
    assert parity.cosine(ref, got) > 0.999


def test_fp16_output_also_read_by_an_fp32_node_keeps_the_graph_ordered(tmp_path):
    """Y is a graph output and the input of a node kept FP32: its FP32 Cast must read the FP16
    tensor, not the output Cast appended at the end (that graph failed onnx's checker)."""
    import onnx
    from onnx import TensorProto, helper

    from edgeth.quantize.onnx_fp16 import convert_fp16
    from edgeth.targets.onnx.runner import session as onnx_session

    f32 = TensorProto.FLOAT
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="r"), helper.make_node("Sigmoid", ["y"], ["z"], name="s")],
        "g", [helper.make_tensor_value_info("x", f32, [2, 3])],
        [helper.make_tensor_value_info("y", f32, [2, 3]), helper.make_tensor_value_info("z", f32, [2, 3])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    out, _ = convert_fp16(model, tmp_path / "m.onnx", keep_fp32=["s"], keep_io_types=True)
    onnx.checker.check_model(out)
    x = np.linspace(-2, 2, 6, dtype=np.float32).reshape(2, 3)
    y, z = onnx_session(tmp_path / "m.onnx").run(None, {"x": x})
    np.testing.assert_allclose(y, np.maximum(x, 0), atol=1e-3)
    np.testing.assert_allclose(z, 1 / (1 + np.exp(-np.maximum(x, 0))), atol=1e-3)


def test_qdq_constants_shared_by_many_nodes_load_in_exact_int8_mode(tmp_path):
    """GELU's constants (1.0, 0.5, sqrt 2) are one initializer for every GELU of a graph; quantized,
    they fed all their consumers from one DequantizeLinear and ONNX Runtime's exact INT8 mode (the
    one a CPU without VNNI needs) refused the model: "Attempt to replace the existing tensor".
    quantize_qdq gives each consumer its own copy; the numbers stay those of the shared one."""
    import onnx

    from edgeth.quantize.onnx_qdq import check_qdq, quantize_qdq
    from edgeth.targets.onnx.runner import session as onnx_session

    torch.manual_seed(0)
    net = torch.nn.Sequential(*(m for _ in range(3) for m in (torch.nn.Conv1d(8, 8, 3, padding=1), torch.nn.GELU()))).eval()
    x = torch.randn(1, 8, 16)
    torch.onnx.export(net, (x,), str(tmp_path / "f.onnx"), dynamo=True, opset_version=18, external_data=False,
                      input_names=["x"], verbose=False)
    quantize_qdq(tmp_path / "f.onnx", tmp_path / "q.onnx", [(x.numpy(),)])
    q = onnx.load(str(tmp_path / "q.onnx"))
    assert check_qdq(q) == []
    consumers: dict[str, int] = {}
    for n in q.graph.node:
        for i in n.input:
            consumers[i] = consumers.get(i, 0) + 1
    dq_const = [n for n in q.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in {i.name for i in q.graph.initializer}]
    assert dq_const and all(consumers[n.output[0]] == 1 for n in dq_const)
    (fast,) = onnx_session(tmp_path / "q.onnx", exact=False).run(None, {"x": x.numpy()})
    (exact,) = onnx_session(tmp_path / "q.onnx", exact=True).run(None, {"x": x.numpy()})
    np.testing.assert_allclose(exact, net(x).detach().numpy(), atol=0.1)
    assert np.corrcoef(exact.ravel(), net(x).detach().numpy().ravel())[0, 1] > 0.99
