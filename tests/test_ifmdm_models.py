"""IF-MDM modules on random tensors (no training): shapes, ranges, CFG switches, presets,
exportability (torch.export + ONNX dynamo), and the pure-numpy motion_diffusion driver."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgeth.models import get_model
from edgeth.models.ifmdm.config import IFMDMConfig, preset
from edgeth.models.ifmdm.programs import PROGRAM_ORDER, flops_per_frame
from edgeth.program import PipelineSpec
from edgeth.runtime_py.pipelines import RecordedNoise, SeededNoise, get_pipeline
from edgeth.runtime_py.torch_backend import torch_call


@pytest.fixture(scope="module")
def fam():
    return get_model("ifmdm")


@pytest.fixture(scope="module")
def tiny(fam):
    """An untrained tiny run whose denoiser output layer is randomised (zero-init otherwise)."""
    run = fam.fresh("tiny", seed=0)
    with torch.no_grad():
        out = run.model.stage2.denoiser.out
        out.weight.normal_(0, 0.05)
        out.bias.normal_(0, 0.05)
        run.model.stage2.denoiser.null_audio.normal_()
        run.model.stage2.denoiser.null_stats.normal_()
    return run


@pytest.fixture(scope="module")
def tiny_programs(fam, tiny):
    return {p.name: p for p in fam.programs(tiny)}


def test_common_blocks():
    from edgeth.models.common.layers import ChannelNorm, PlainLayerNorm
    from edgeth.models.common.warp import FlowWarp

    x = torch.randn(2, 5, 300)
    ln = PlainLayerNorm(300)
    torch.testing.assert_close(ln(x), F.layer_norm(x, (300,), eps=1e-6), atol=1e-5, rtol=1e-5)
    img = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(FlowWarp(16)(img, torch.zeros(2, 2, 16, 16)), img, atol=1e-5, rtol=0)
    y = ChannelNorm(3)(img)
    torch.testing.assert_close(y.mean(1), torch.zeros(2, 16, 16), atol=1e-5, rtol=0)
    with pytest.raises(ValueError):
        from edgeth.models.common.warp import warp

        warp(torch.randn(1, 1, 2, 4, 4), torch.zeros(1, 2, 4, 4))


def test_config_roundtrip_and_presets():
    for name in ("tiny", "mobile", "paper"):
        cfg = preset(name)
        assert IFMDMConfig.from_json(cfg.to_json()) == cfg
        assert cfg.stage1.motion_dim == 20
    with pytest.raises(Exception):
        preset("huge")


def test_mouth_code_reads_only_the_mouth_crop():
    """The last mouth_code_dim motion entries come from the mouth crop alone; the rest from the frame."""
    from edgeth.models.ifmdm.stage1 import VisualEncoder

    cfg = preset("tiny").stage1
    torch.manual_seed(0)
    enc = VisualEncoder(cfg).eval()
    k, (t, b, l, r) = cfg.mouth_code_dim, cfg.mouth_pixels
    assert k > 0 and 0 < t < b < cfg.image_size and 0 < l < r < cfg.image_size
    img = torch.rand(2, 3, cfg.image_size, cfg.image_size)
    outside, inside = img.clone(), img.clone()
    outside[:, :, :t] = torch.rand_like(outside[:, :, :t])  # rows above the mouth box
    inside[:, :, t:b, l:r] = torch.rand_like(inside[:, :, t:b, l:r])
    with torch.no_grad():
        m, m_out, m_in = enc.motion(img), enc.motion(outside), enc.motion(inside)
    torch.testing.assert_close(m_out[:, -k:], m[:, -k:], atol=0, rtol=0)  # mouth code blind outside the box
    assert (m_out[:, :-k] - m[:, :-k]).abs().max() > 1e-4  # the global head sees the whole frame
    assert (m_in[:, -k:] - m[:, -k:]).abs().max() > 1e-4
    assert m.shape == (2, cfg.motion_dim) and m.abs().max() <= 1


def test_runs_from_before_the_mouth_code_still_load():
    """A run config without mouth_code_dim builds the one-head encoder its weights were trained for."""
    from edgeth.models.ifmdm.stage1 import VisualEncoder

    d = preset("tiny").to_json()
    del d["stage1"]["mouth_code_dim"]
    cfg = IFMDMConfig.from_json(d).stage1
    assert cfg.mouth_code_dim == 0
    enc = VisualEncoder(cfg)
    assert enc.mouth is None and enc.to_coeff[-1].out_features == cfg.motion_dim
    assert VisualEncoder(preset("tiny").stage1).to_coeff[-1].out_features == cfg.motion_dim - preset("tiny").stage1.mouth_code_dim
    with pytest.raises(ValueError, match="mouth_box"):
        dataclasses.replace(preset("tiny").stage1, mouth_box=(0.7, 0.4, 0.2, 0.8))


def test_program_shapes_and_ranges(tiny_programs):
    assert tuple(tiny_programs) == PROGRAM_ORDER
    with torch.no_grad():
        for p in tiny_programs.values():
            out = p.module(*p.example_inputs)
            outs = out if isinstance(out, tuple) else (out,)
            assert [tuple(o.shape) for o in outs] == [s.shape for s in p.outputs], p.name
            assert all(torch.isfinite(o).all() for o in outs)
            assert p.flops and p.flops > 0
            assert (p.meta["params"] > 0) == (p.name != "audio_frontend"), p.name  # the DSP frontend has no weights
        app = tiny_programs["appearance_encoder"].module(*tiny_programs["appearance_encoder"].example_inputs)
        assert app[-1].abs().max() <= 1.0  # motion hint is tanh-normalised
        frames = tiny_programs["renderer"].module(*tiny_programs["renderer"].example_inputs)
        assert frames.min() >= 0.0 and frames.max() <= 1.0


def test_denoiser_condition_drop(tiny_programs):
    """keep=0 switches a condition group to its null embedding: the output stops depending on it."""
    p = tiny_programs["motion_denoiser"]
    x, t, a, h, mu, sig, keep = p.example_inputs
    with torch.no_grad():
        base = p.module(x, t, a, h, mu, sig, keep)
        other = p.module(x, t, a + 1.0, h, mu + 0.3, sig * 3, keep)
    assert (base[0] - other[0]).abs().max() > 1e-4  # conditioned row reacts
    torch.testing.assert_close(base[1], other[1])  # unconditioned row (keep = 0, 0) does not
    with torch.no_grad():
        only_audio = p.module(x, t, a, h, mu + 0.3, sig * 3, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        ref = p.module(x, t, a, h, mu, sig, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    torch.testing.assert_close(only_audio[0], ref[0])  # stats dropped -> stats ignored


def test_mobile_renderer_budget_and_forward(fam):
    run = fam.fresh("mobile")
    progs = {p.name: p for p in fam.programs(run)}
    per = flops_per_frame(list(progs.values()), run.cfg)
    assert per["renderer"] <= 3.0, per  # phone budget: <= 3 GFLOPs per rendered frame
    with torch.no_grad():
        out = progs["renderer"].module(*progs["renderer"].example_inputs)
    assert tuple(out.shape) == (1, 3, 256, 256)


@pytest.mark.parametrize("name", ["tiny", "mobile"])
def test_renderer_reuses_the_finest_warp_bit_for_bit(name):
    """The finest level's sample of the source image replaces out_warp's grid_sample: the same
    frames bit for bit, with one grid_sampler_2d fewer in the exported renderer."""
    from edgeth.models.ifmdm.stage1 import Stage1Model

    torch.manual_seed(0)
    m = Stage1Model(preset(name).stage1).eval()
    with torch.no_grad():  # zero-initialised heads would give zero flow: every level's sample the same
        for lv in m.renderer.levels:
            lv.head.weight.normal_(0, 0.02)
        m.renderer.to_rgb.weight.normal_(0, 0.02)
    r = m.renderer
    assert r.reuse_sample
    size = preset(name).stage1.image_size
    src, drv = torch.rand(1, 3, size, size), torch.rand(2, 3, size, size)
    with torch.no_grad():
        feats, ms = m.encoder(src)
        _, md = m.encoder(drv)
        fast = r(feats, ms, md)
        r.reuse_sample = False
        slow = r(feats, ms, md)
        r.reuse_sample = True
    assert torch.equal(fast, slow)
    if name == "tiny":
        ep = torch.export.export(r, (feats, ms, md))
        n = sum("grid_sampler" in str(x.target) for x in ep.graph.nodes if x.op == "call_function")
        assert n == len(r.levels)  # one per level, none for the output
        # one frame per call (the deployed renderer): no expand to the shape it already has, which
        # ExecuTorch's portable kernel would copy in full (layers.to_batch)
        one = torch.export.export(r, (feats, ms, md[:1]))
        same = [x.name for x in one.graph.nodes if x.op == "call_function" and "expand" in str(x.target)
                and tuple(x.args[0].meta["val"].shape) == tuple(x.meta["val"].shape)]
        assert not same, same


def test_paper_preset_builds():
    from edgeth.models.common.flops import count_params
    from edgeth.models.ifmdm.run import IFMDM

    m = IFMDM(preset("paper"))
    assert m.stage1.cfg.image_size == 512
    assert count_params(m.stage2.denoiser) > 20e6  # published-scale transformer


@pytest.mark.parametrize("name", PROGRAM_ORDER)
def test_programs_export(tiny_programs, name, tmp_path):
    """torch.export and ONNX (dynamo, opset 18) both take every tiny program; ORT matches eager."""
    import onnxruntime as ort

    p = tiny_programs[name]
    ep = torch.export.export(p.module, p.example_inputs)
    ops = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert not any("grid_sampler_3d" in o or "scaled_dot_product" in o or "native_layer_norm" in o for o in ops)
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(p.module, p.example_inputs, str(path), dynamo=True, opset_version=18, external_data=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {i.name: x.numpy() for i, x in zip(sess.get_inputs(), p.example_inputs)})
    with torch.no_grad():
        ref = p.module(*p.example_inputs)
    ref = ref if isinstance(ref, tuple) else (ref,)
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r.numpy(), atol=1e-4, rtol=1e-4)


def test_pipeline_spec_is_data(fam, tiny):
    import json

    spec = fam.pipeline(tiny)
    d = json.loads(json.dumps(spec.to_json()))
    assert PipelineSpec.from_json(d) == spec
    assert spec.kind == "motion_diffusion" and spec.programs == PROGRAM_ORDER
    for key in ("train_steps", "beta_schedule", "steps", "eta", "guidance", "prediction"):
        assert key in spec.sampler
    assert spec.window["length"] == 20 and spec.audio["samples_per_frame"] == 640


def test_driver(fam, tiny, tiny_programs):
    spec = fam.pipeline(tiny)
    call = torch_call(tiny_programs)
    drive = get_pipeline("motion_diffusion")
    rng = np.random.default_rng(0)
    image = rng.random((90, 70, 3)).astype(np.float32)  # any size: resized
    audio = (rng.standard_normal(16000 * 2 + 100) * 0.1).astype(np.float32)
    noise = SeededNoise(3)
    r = drive(spec, call, image=image, audio=audio, noise=noise, steps=4)
    n = int(np.ceil(audio.size / 640))
    assert r.frames.shape == (n, 64, 64, 3) and r.fps == 25
    assert r.frames.min() >= 0 and r.frames.max() <= 1
    m = r.extras["motion"]
    assert m.shape == (n, 20) and np.abs(m).max() <= 1.0
    assert r.extras["windows"] == 1 + int(np.ceil((n - 20) / 16))
    assert r.extras["calls"]["motion_denoiser"] == 4 * r.extras["windows"]
    # the same noise replayed by name gives the same video (how every backend is compared)
    again = drive(spec, call, image=image, audio=audio, noise=RecordedNoise(noise.drawn), steps=4)
    np.testing.assert_array_equal(again.frames, r.frames)
    assert set(noise.drawn) == {f"window{w}/x_T" for w in range(r.extras["windows"])}
    other = drive(spec, call, image=image, audio=audio, noise=RecordedNoise(noise.drawn), steps=4, guidance=4.0)
    assert np.abs(other.extras["motion"] - m).max() > 1e-4
    # window chaining: the first window is the same with or without cross-fading; later windows
    # differ from the blended overlap frames on; a spec from before "blend" (imposed overlap) runs
    b, o = spec.window["blend"], spec.window["overlap"]
    assert 0 < b <= o
    old = PipelineSpec.from_json(spec.to_json())
    del old.window["blend"]
    hard = drive(old, call, image=image, audio=audio, noise=RecordedNoise(noise.drawn), steps=4).extras["motion"]
    s1 = r.extras["window_starts"][1]
    np.testing.assert_array_equal(hard[:s1 + o - b], m[:s1 + o - b])
    assert np.abs(hard[s1 + o - b:] - m[s1 + o - b:]).max() > 1e-4
    with pytest.raises(Exception, match="mode"):
        drive(spec, call, image=image, audio=audio, noise=SeededNoise(0), motion_mean_mode="wild")
    with pytest.raises(Exception, match="audio"):
        drive(spec, call, image=image, audio=np.zeros(0, np.float32), noise=SeededNoise(0))


def test_driver_is_pure_numpy():
    code = ("import sys, edgeth.runtime_py.pipelines.motion_diffusion, edgeth.sampling;"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
