"""ExecuTorch target on the fixture programs: export -> run -> parity, report, bundled program, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgeth.errors import BundleError, InputError
from edgeth.targets import get_target
from fixture_programs import fixture_programs

pytestmark = pytest.mark.skipif(not get_target("executorch").available().ok, reason="executorch is not installed")


def _entry(p, art):
    from edgeth.targets.common import runner_entry

    return runner_entry(p, art)


def _eager(p, xs):
    import torch

    with torch.no_grad():
        return p.module(*[torch.from_numpy(x) for x in xs]).numpy()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("executorch")
    t = get_target("executorch")
    res = {}
    for p in fixture_programs():
        warnings = t.preflight(p)
        res[p.name] = (p, t.export(p, None, out), warnings)
    return out, res


def test_report_counts_delegated_and_portable_ops(exported):
    out, res = exported
    _, art, warnings = res["renderer"]
    rep = art.report
    # the grid sample is rewritten as row gathers (portable data movement) + arithmetic XNNPACK runs
    assert rep["portable_compute_ops"] == {} and rep["portable_ops"]["aten.index_select"] == 4
    assert rep["delegated_ops"]["aten.mul"] >= 4 and rep["delegated_ops"]["aten.floor"] == 2
    assert rep["delegated_ops"]["aten.convolution"] == 3 and "aten.upsample_bilinear2d" in rep["delegated_ops"]
    assert rep["size_bytes"] == (out / "renderer.pte").stat().st_size > 0
    assert json.loads(json.dumps(rep))["signature"]["inputs"][0]["name"] == "image"  # manifest-ready
    assert not any("grid_sampler" in w.construct for w in warnings)
    den = res["denoiser"][1].report
    assert den["portable_compute_ops"] == {"aten.native_layer_norm": 3}
    assert set(den["portable_modules"]["aten.native_layer_norm"]) == {"block.norm1", "block.norm2", "norm"}
    assert den["delegated_ops"]["aten.linear"] >= 6 and den["delegate_subgraphs"] >= 1


@pytest.mark.parametrize("padding,align", [("border", False), ("zeros", True), ("reflection", False)])
def test_grid_samples_are_lowered_as_gathers_that_match_pytorch(padding, align):
    """Bilinear border/zeros grid samples leave the single-threaded portable kernel (rewritten as
    index_select + XNNPACK arithmetic, narrow and wide maps, batch > 1); other modes keep it. The
    .pte matches F.grid_sample, samples outside the map included."""
    import torch
    import torch.nn.functional as F
    from executorch.runtime import Runtime

    from edgeth.targets.executorch.exporter import delegation_report, lower

    class Warp(torch.nn.Module):
        def forward(self, x, y, grid):
            g = grid.permute(0, 2, 3, 1)
            return (F.grid_sample(x, g, padding_mode=padding, align_corners=align),
                    F.grid_sample(y, g, padding_mode=padding, align_corners=align))

    rng = np.random.default_rng(0)
    xs = [torch.from_numpy(rng.standard_normal(s).astype(np.float32)) for s in ((2, 3, 12, 10), (2, 16, 6, 5))]
    grid = torch.from_numpy(rng.uniform(-1.3, 1.3, (2, 2, 9, 11)).astype(np.float32))  # some samples off the map
    edge = lower(torch.export.export(Warp(), (*xs, grid)))
    rep = delegation_report(edge)
    gathered = padding != "reflection"
    assert ("aten.grid_sampler_2d" in rep["portable_ops"]) is not gathered, rep["portable_ops"]
    assert rep["portable_ops"].get("aten.index_select", 0) == (8 if gathered else 0)
    pte = edge.to_executorch().buffer  # held: the runtime reads the program from this buffer, it does not copy it
    method = Runtime.get().load_program(pte).load_method("forward")
    for got, want in zip(method.execute([*xs, grid]), Warp()(*xs, grid)):
        assert got.shape == want.shape and (got - want).abs().max() <= 1e-5


@pytest.mark.parametrize("name", ["renderer", "denoiser"])
def test_runner_matches_eager_fp32(exported, name):
    out, res = exported
    p, art, _ = res[name]
    run = get_target("executorch").runner(out, _entry(p, art), threads=1)
    rng = np.random.default_rng(1)
    for _ in range(2):  # a fresh input each time: outputs must not alias planned memory
        xs = [rng.standard_normal(s.shape).astype(np.float32) for s in p.inputs]
        (y,) = run(*xs)
        assert y.shape == tuple(p.outputs[0].shape)
        assert np.abs(y - _eager(p, xs)).max() <= 1e-4
    (y_list,) = run(xs)  # list form too
    assert np.array_equal(y_list, y)


def test_wrong_input_shape_is_an_input_error(exported):
    out, res = exported
    p, art, _ = res["renderer"]
    run = get_target("executorch").runner(out, _entry(p, art))
    with pytest.raises(InputError, match=r"'image'.*expected shape \(1, 3, 32, 32\), given \(1, 3, 16, 16\)"):
        run(np.zeros((1, 3, 16, 16), np.float32), np.zeros((1, 16), np.float32))


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_pte_is_a_bundle_error(exported, tmp_path, damage):
    out, res = exported
    p, art, _ = res["denoiser"]
    data = (out / art.files[0]).read_bytes()
    (tmp_path / art.files[0]).write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a program" * 64)
    with pytest.raises(BundleError, match="cannot load ExecuTorch program denoiser.pte"):
        get_target("executorch").runner(tmp_path, _entry(p, art))


def test_bundled_program_carries_golden_vectors_that_verify(exported):
    from edgeth.targets.executorch import verify_bundled

    out, res = exported
    p, art, _ = res["renderer"]
    rng = np.random.default_rng(2)
    calls = [[rng.random(s.shape, dtype=np.float32) for s in p.inputs] for _ in range(2)]
    expected = [[_eager(p, xs)] for xs in calls]
    t = get_target("executorch")
    assert t.attach_golden(out, art, calls, expected) == ["renderer.bpte"]
    assert verify_bundled(out / "renderer.bpte", rtol=1e-5, atol=1e-4) == [True, True]
    # wrong expectations are caught by the runtime's own comparison
    t.attach_golden(out, art, calls, [expected[0], [expected[1][0] + 0.5]])
    assert verify_bundled(out / "renderer.bpte", rtol=1e-5, atol=1e-4) == [True, False]
    with pytest.raises(InputError, match=r"golden call 0: .*'image'.*given \(1, 3, 8, 8\)"):
        t.attach_golden(out, art, [[np.zeros((1, 3, 8, 8), np.float32), calls[0][1]]], expected[:1])
    (out / "broken.bpte").write_bytes(b"\0" * 100)
    with pytest.raises(BundleError, match="broken.bpte"):
        verify_bundled(out / "broken.bpte")


def test_bundled_case_count_read_from_the_flatbuffer_is_executorchs(exported, tmp_path):
    """count_cases reads the BundledProgram tables directly; it must agree with ExecuTorch's own
    deserializer, and refuse bytes that are not a BundledProgram."""
    from executorch.devtools.bundled_program.serialize import deserialize_from_flatbuffer_to_bundled_program

    from edgeth.targets.executorch.bundled import count_cases

    out, res = exported
    p, art, _ = res["renderer"]
    rng = np.random.default_rng(3)
    (tmp_path / art.files[0]).write_bytes((out / art.files[0]).read_bytes())
    for n in (1, 3):
        calls = [[rng.random(s.shape, dtype=np.float32) for s in p.inputs] for _ in range(n)]
        get_target("executorch").attach_golden(tmp_path, art, calls, [[_eager(p, xs)] for xs in calls])
        buf = (tmp_path / "renderer.bpte").read_bytes()
        suites = deserialize_from_flatbuffer_to_bundled_program(buf).method_test_suites
        assert count_cases(buf) == sum(len(s.test_cases) for s in suites if s.method_name == "forward") == n
        assert count_cases(buf, "other_method") == 0
    for bad in (b"", b"\0" * 100, buf[:40], buf[:4] + b"XX08" + buf[8:]):
        with pytest.raises(ValueError):
            count_cases(bad)


@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_preflight_rejects_tanh_gelu_that_xnnpack_computes_as_exact(approximate, tmp_path):
    """executorch 1.5.1's XNNPACK runs gelu(approximate='tanh') as exact GELU (4.7e-4 off at x=-2.7):
    preflight names it as an error; exact GELU lowers and matches eager."""
    import torch

    from edgeth.program import Program, TensorSpec

    class Act(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(8, 8)

        def forward(self, x):
            return torch.nn.functional.gelu(self.fc(x), approximate=approximate)

    x = torch.linspace(-4, 4, 64).reshape(8, 8)
    p = Program("act", Act().eval(), [TensorSpec("x", (8, 8))], [TensorSpec("y", (8, 8))], (x,))
    t = get_target("executorch")
    errors = [i for i in t.preflight(p) if i.severity == "error"]
    if approximate == "tanh":
        assert len(errors) == 1 and "approximate='tanh'" in errors[0].construct and "fc" not in errors[0].construct
        return
    assert not errors
    art = t.export(p, None, tmp_path)
    (got,) = t.runner(tmp_path, _entry(p, art))(x.numpy())
    assert np.abs(got - _eager(p, [x.numpy()])).max() <= 1e-5
