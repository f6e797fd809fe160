"""MDCF building blocks on untrained tiny models (fast): compression ratios from tensor sizes,
IGC gradients, the KL floor on sigma, no Conv3d / 5-D grid_sample in any program, the
preflight's Conv3d rule, the factorized denoiser running any T."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeth.models.mdcf.config import compression, preset, variant_192
from edgeth.models.mdcf.lmae import LMAE, CascadeTrainer, kl_divergence
from edgeth.models.mdcf.run import fresh_run


def _ratios(cfg):
    m = fresh_run(cfg).model
    s = cfg.fde.image_size
    x = torch.rand(1, 3, s, s)
    with torch.no_grad():
        dyn = m.fde.estimator(x, torch.rand(1, 3, s, s))
        mu, _ = m.lmae.encode(dyn)
    return compression(x, dyn, mu), dyn.shape, mu.shape


@pytest.mark.parametrize("name", ["tiny", "mobile"])
def test_compression_ratio_is_768_and_192_for_the_variant_from_tensor_sizes(name):
    r, dyn, mu = _ratios(preset(name))
    s = preset(name).fde.image_size
    assert tuple(dyn[1:]) == (3, s // 4, s // 4) and tuple(mu[1:]) == (4, s // 32, s // 32)
    assert (r["fde"], r["lmae"], r["mdcf"]) == (16.0, 48.0, 768.0)
    r192, _, mu192 = _ratios(variant_192(preset(name)))
    assert tuple(mu192[1:]) == (4, s // 16, s // 16) and r192["mdcf"] == 192.0


def test_igc_gradients_reach_the_lmae_only():
    m = fresh_run(preset("tiny")).model
    m.requires_grad_(True)
    tr = CascadeTrainer(m.fde, m.lmae, "tpc")
    src, drv = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    tr.losses(src, drv)["igc"].backward()
    assert all(p.grad is None for p in m.fde.parameters())
    enc = [p.grad for p in m.lmae.encoder.parameters()]
    dec = [p.grad for p in m.lmae.decoder.parameters()]
    assert all(g is not None for g in enc + dec) and sum(float(g.abs().sum()) for g in enc) > 0
    # the end-to-end ablation does train the FDE through the same loss
    m2 = fresh_run(preset("tiny")).model
    m2.requires_grad_(True)
    CascadeTrainer(m2.fde, m2.lmae, "e2e").losses(src, drv)["igc"].backward()
    assert sum(float(p.grad.abs().sum()) for p in m2.fde.estimator.parameters() if p.grad is not None) > 0


def test_kl_term_keeps_sigma_above_a_floor():
    """MSE alone drives sigma to ~0 (the decoder never learns to absorb latent noise); with the
    paper's lambda_KL = 1e-4 it stays about 0.1 (measured: 0.0027 vs 0.108 mean after 300 steps)."""
    torch.set_num_threads(1)
    cfg = preset("tiny")
    g = torch.Generator().manual_seed(0)
    base = F.interpolate(torch.randn(16, 3, 4, 4, generator=g), size=16, mode="bilinear")
    dyn = torch.cat([base[:, :2] * 0.1, torch.sigmoid(base[:, 2:3] * 2)], 1)
    sig = {}
    for lam in (0.0, 1e-4):
        torch.manual_seed(0)
        m = LMAE(cfg.lmae, cfg.fde)
        opt = torch.optim.Adam(m.parameters(), lr=3e-3)
        for _ in range(200):
            mu, lv = m.encode(dyn)
            z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu)
            loss = F.mse_loss(m.decode_normalized(z), m.normalize(dyn)) + lam * kl_divergence(mu, lv)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            sig[lam] = torch.exp(0.5 * m.encode(dyn)[1])
    assert float(sig[1e-4].min()) > 0.03, float(sig[1e-4].min())
    assert float(sig[0.0].mean()) < 0.3 * float(sig[1e-4].mean()), (float(sig[0.0].mean()), float(sig[1e-4].mean()))


def test_no_conv3d_and_no_5d_grid_sample_in_any_program():
    from edgeth.models import get_model
    from edgeth.targets.preflight import facts

    fam = get_model("mdcf")
    run = fam.fresh("tiny")
    progs = fam.programs(run)
    assert [p.name for p in progs] == list(fam.pipeline(run).programs)
    for p in progs:
        f = facts(p)
        assert f.export_error is None, (p.name, f.export_error)
        assert f.conv3d == [], (p.name, f.conv3d)
        assert all(g.rank == 4 for g in f.grid_samples), (p.name, f.grid_samples)
        assert not any("grid_sampler_3d" in o or "native_layer_norm" in o for o in f.ops), (p.name, f.ops)
    assert sum(len(facts(p).grid_samples) for p in progs) == 2  # the renderer's two 4-D warps


class _Video(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv3d(2, 2, 3, padding=1))

    def forward(self, x):
        return self.block(x)


def test_preflight_rejects_conv3d_for_executorch_naming_the_module():
    from edgeth.errors import UnsupportedOp
    from edgeth.program import Program, TensorSpec
    from edgeth.targets import get_target

    p = Program("video", _Video().eval(), [TensorSpec("x", (1, 2, 4, 6, 6))], [TensorSpec("y", (1, 2, 4, 6, 6))],
                (torch.randn(1, 2, 4, 6, 6),))
    with pytest.raises(UnsupportedOp, match=r"3-D convolution \(Conv3d\) at module 'block.0'"):
        get_target("executorch").export(p, None, "/nonexistent/never-written")
    assert get_target("onnx").preflight(p) == []  # ONNX Runtime runs N-D Conv


def test_factorized_denoiser_runs_any_number_of_frames():
    run = fresh_run(preset("tiny"))
    den, d = run.model.diffusion.denoiser, run.cfg.diffusion
    torch.manual_seed(0)
    for n in (1, 7, 45):
        z = torch.randn(1, n, 4, 2, 2)
        with torch.no_grad():
            out = den(z, torch.tensor([10.0]), torch.randn(1, n, d.audio_dim), torch.randn(1, n, 4), torch.randn(1, 32, 2, 2))
        assert out.shape == z.shape


def test_speech_features_are_bounded_and_old_runs_load_as_trained():
    """MDCF's audio features go through tanh (unbounded, they grew ~1000x within 50 steps and the
    pose generator reading them blew up); a run written before the setting existed was trained
    without it and loads without it."""
    from edgeth.audio import AudioConfig
    from edgeth.models.mdcf.config import MDCFConfig
    from edgeth.models.mdcf.diffusion import audio_encoder

    cfg = preset("tiny")
    assert cfg.diffusion.audio_bound
    enc = audio_encoder(cfg, AudioConfig()).eval()
    with torch.no_grad():
        enc.out.weight.mul_(1000.0)
        feats = enc(torch.randn(2, 640 * 8))
    assert feats.shape[-1] == cfg.diffusion.audio_dim
    assert feats.abs().max() <= 1.0 and feats.abs().max() > 0.99
    d = cfg.to_json()
    assert MDCFConfig.from_json(d) == cfg
    old = {**d, "diffusion": {k: v for k, v in d["diffusion"].items() if k != "audio_bound"}}
    assert not MDCFConfig.from_json(old).diffusion.audio_bound


def _fde_pair():
    """A tiny FDE decoder with the mouth painter and the same decoder without it (shared weights)."""
    import dataclasses

    from edgeth.models.mdcf.fde import ImageDecoder

    cfg = preset("tiny").fde
    assert cfg.mouth_patch_channels > 0 and cfg.mouth_weight > 0  # the presets draw the mouth
    torch.manual_seed(0)
    with_p = ImageDecoder(cfg)
    without = ImageDecoder(dataclasses.replace(cfg, mouth_patch_channels=0))
    without.load_state_dict({k: v for k, v in with_p.state_dict().items() if not k.startswith("mouth_patch.")})
    return cfg, with_p.eval(), without.eval()


def test_fde_mouth_painter_reads_the_dynamics_and_paints_only_the_mouth_box():
    """Issue 12: the FDE drew no open mouth (held-out re-render amplitude 0.06); the shared mouth
    painter on its decoder reads [f; m] on the mouth box. It starts as the identity (runs from
    before it load and render as trained), changes no pixel outside the box, and is fed the
    dynamics: the box's [f; m] cells as its code, [f; m] upsampled as per-pixel maps."""
    cfg, with_p, without = _fde_pair()
    s, d = cfg.image_size, cfg.dyn_size
    img, emb = torch.rand(2, 3, s, s), torch.randn(1, cfg.enc_channels[-1], d, d)
    dyn = torch.cat([torch.randn(2, 2, d, d) * 0.05, torch.rand(2, 1, d, d)], 1)
    with torch.no_grad():
        assert torch.equal(with_p(img[:1], emb, dyn), without(img[:1], emb, dyn))
        nn.init.normal_(with_p.mouth_patch.out.weight, std=0.3)
        a, base = with_p(img[:1], emb, dyn), without(img[:1], emb, dyn)
        t, b, l, r = cfg.mouth_pixels
        inside = torch.zeros_like(a, dtype=torch.bool)
        inside[:, :, t:b, l:r] = True
        assert torch.equal(a[~inside], base[~inside]) and (a - base)[inside].abs().max() > 1e-3
        seen = []
        hook = with_p.mouth_patch.register_forward_hook(lambda mod, args, out: seen.append(args))
        with_p(img[:1], emb, dyn)
        hook.remove()
    # the painter's code is [f; m] on the mouth box at S/4 (flattened), its maps [f; m] at full size
    _, _, code, extra = seen[0]
    dt, db, dl, dr = with_p.dyn_box
    want = torch.cat([dyn[:, :2], dyn[:, 2:3].clamp(0, 1)], 1)[:, :, dt:db, dl:dr].reshape(2, -1)
    assert torch.equal(code, want) and extra.shape == (2, 3, s, s)
    assert torch.allclose(extra, F.interpolate(torch.cat([dyn[:, :2], dyn[:, 2:3].clamp(0, 1)], 1), size=s,
                                               mode="bilinear", align_corners=False))


def test_fde_image_loss_adds_the_squared_mouth_box_error():
    import dataclasses

    from edgeth.models.common.losses import mouth_box_loss
    from edgeth.models.mdcf.fde import image_loss

    cfg = preset("tiny").fde
    pred, tgt, src = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    plain = image_loss(pred, tgt, src, dataclasses.replace(cfg, mouth_weight=0.0))
    full = image_loss(pred, tgt, src, cfg)
    assert torch.allclose(full - plain, cfg.mouth_weight * mouth_box_loss(pred, tgt, cfg.mouth_pixels, "mse"))
    assert cfg.mouth_loss == "mse"


def test_runs_from_before_the_mouth_painter_load_without_it():
    from edgeth.models.mdcf.config import MDCFConfig

    d = preset("tiny").to_json()
    old = {**d, "fde": {k: v for k, v in d["fde"].items()
                        if k not in ("mouth_box", "mouth_weight", "mouth_loss", "mouth_patch_channels")}}
    cfg = MDCFConfig.from_json(old)
    assert cfg.fde.mouth_patch_channels == 0 and cfg.fde.mouth_weight == 0.0
    assert not any(k.startswith("decoder.mouth_patch.") for k in fresh_run(cfg).model.fde.state_dict())


def test_lmae_dynamics_loss_weights_the_mouth_box():
    """Phase two's dynamics MSE counts the mouth box of [f; m] lambda_mouth times more (issue 12:
    without it the LMAE dropped the mouth, held-out re-render amplitude 0.03 vs the FDE's 0.96)."""
    m = fresh_run(preset("tiny")).model
    tr = CascadeTrainer(m.fde, m.lmae, "tpc")
    assert tr.l_mouth == preset("tiny").lmae.lambda_mouth > 0
    src, drv = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.manual_seed(0)
        weighted = tr.losses(src, drv)["mse"]
        dyn = m.fde.estimator(src, drv)
        mu, logvar = m.lmae.encode(dyn)
        torch.manual_seed(0)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        dyn_n, target = m.lmae.decode_normalized(z), m.lmae.normalize(dyn)
    t, b, l, r = m.fde.decoder.dyn_box
    box = F.mse_loss(dyn_n[:, :, t:b, l:r], target[:, :, t:b, l:r])
    assert torch.allclose(weighted, F.mse_loss(dyn_n, target) + tr.l_mouth * box, rtol=1e-5)
    assert box > 0
