"""MDCF on the shared tiny fixture run (all three phases trained on synth_corpus): the TPC
freeze, the denoiser's falling loss, the LMAE decoder's low-pass behaviour, windowed vs
global NAR, the pipeline's stages, and `edgeth train` flag handling."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from edgeth.models import get_model

# Windowed NAR (T = 20, O = 6: windows at 0 and 14) vs global NAR (one window of 34) on the same
# 34 frames and noise, 10 DDIM steps, compared on the temporal part of the diffusion variable
# (x0 minus its mean over frames; the mean is the per-portrait part every sample shares).
# Measured on the fixture before the LMAE's mouth term: 0.96 (0.96 with AVX2 kernels), another
# noise draw 0.19 (0.29). Since that term the latents carry the mouth and the briefly trained
# fixture agrees less, and it varies with the training seed: 0.76 / 0.94 / 0.85 for seeds 0 / 1 / 2,
# another noise draw 0.48 / -0.04 / 0.20 (a 600-step benchmark model: 0.91 vs 0.42; its first
# window's frames that no other window covers agree least, 0.70, the last ones 0.97). The
# fixture's FDE barely moves after 200 steps, so the frames agree to > 100 dB and say little; the
# bound on them only catches a broken chain.
AGREE_COSINE = 0.7
AGREE_PSNR_DB = 28.0


@pytest.fixture(scope="module")
def run(mdcf_tiny_run):
    return get_model("mdcf").load(mdcf_tiny_run)


def test_phase_two_leaves_the_fde_bit_identical(mdcf_tiny_run):
    from edgeth.train.checkpoint import read_safetensors

    fde, _ = read_safetensors(mdcf_tiny_run / "fde.safetensors")
    both, _ = read_safetensors(mdcf_tiny_run / "lmae.safetensors")
    assert set(f"fde.{k}" for k in fde) == {k for k in both if k.startswith("fde.")}
    assert all(torch.equal(v, both[f"fde.{k}"]) for k, v in fde.items())
    assert any(k.startswith("lmae.") for k in both)
    d = json.loads((mdcf_tiny_run / "mdcf.json").read_text())
    assert d["phases"] == ["fde", "lmae", "diffusion"] and d["mode"] == "tpc"


def _log(run_dir, phase: str) -> list[dict]:
    return [json.loads(line) for line in (run_dir / f"{phase}.log.jsonl").read_text().splitlines()]


def test_the_denoiser_loss_falls(run, synth_corpus):
    """On fixed windows, timesteps and noise: the trained denoiser's DDPM loss vs the same model at
    initialization (which outputs 0: the loss is then E[x0^2], ~1 for the standardized latent)."""
    from edgeth.data.dataset import load_corpus
    from edgeth.models.mdcf.diffusion import LatentDiffusion
    from edgeth.models.mdcf.training import LatentWindows

    trained = run.model.diffusion
    init = LatentDiffusion(run.cfg).attach(run.model.fde, run.model.lmae).eval()
    init.load_state_dict({k: v for k, v in trained.state_dict().items() if "mel_" in k or "latent_" in k}, strict=False)
    torch.manual_seed(0)
    ds = LatentWindows(load_corpus(synth_corpus, size=64, split="train"), run.cfg.diffusion.window)
    batch = {k: torch.stack([ds[i * 37][k] for i in range(6)]) for k in ("source", "frames", "audio", "rho")}
    losses = {}
    with torch.no_grad():
        mu, origin, ctx = trained.latents(batch["source"], batch["frames"])
        x0 = trained.standardize(mu, origin)
        feats = {id(m): m.audio_encoder(batch["audio"]) for m in (trained, init)}
        for m in (trained, init):
            tot = 0.0
            for t in (50, 250, 500, 750):
                tt = torch.full((6,), t)
                eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(t))
                out = m.denoiser(m.sched.q_sample(x0, tt, eps), tt.float(), feats[id(m)], batch["rho"], ctx)
                tot += float(torch.nn.functional.mse_loss(out, m.sched.target(x0, tt, eps)))
            losses["trained" if m is trained else "init"] = tot / 4
    # measured (200 steps): 0.25 vs 0.62 with AVX-512 kernels, 0.31 vs 0.81 with AVX2 ones (ATEN_CPU_CAPABILITY=avx2
    # ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2: CI's numerics); before the features were bounded a pose
    # blow-up starved the denoiser and gave 0.47 vs 0.62 / 0.77 vs 0.81 (the latter failed CI)
    assert losses["trained"] < 0.6 * losses["init"], losses


def test_decoding_a_noised_latent_degrades_frames_less_than_noising_the_dynamics(run, synth_corpus):
    """The paper's low-pass claim (§3.1): the same relative perturbation hurts less in the latent."""
    from edgeth.data.dataset import load_corpus

    clip = load_corpus(synth_corpus, size=64, split="val")[0]
    fr = torch.from_numpy(np.ascontiguousarray(clip.frames[::6][:16])).permute(0, 3, 1, 2).float() / 255
    src = fr[:1].expand(len(fr), -1, -1, -1)
    fde, lmae = run.model.fde, run.model.lmae
    g = torch.Generator().manual_seed(0)

    def noised(x: torch.Tensor, rel: float) -> torch.Tensor:
        n = torch.randn(x.shape, generator=g)
        return x + rel * n * x.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1) / n.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)

    with torch.no_grad():
        emb = fde.encoder(src)
        dyn = fde.estimator(src, fr)
        mu, _ = lmae.encode(dyn)
        dec = lmae.decode(mu)
        err_z, err_d = [], []
        for rel in (0.05, 0.1, 0.2):
            base_z, base_d = fde.decoder(src, emb, dec), fde.decoder(src, emb, dyn)
            err_z.append(float((fde.decoder(src, emb, lmae.decode(noised(mu, rel))) - base_z).pow(2).mean()))
            d_noisy = torch.cat([noised(dyn[:, :2], rel), noised(dyn[:, 2:], rel)], 1)  # f and m each by rel
            err_d.append(float((fde.decoder(src, emb, d_noisy) - base_d).pow(2).mean()))
    assert all(a < b for a, b in zip(err_z, err_d)), (err_z, err_d)


def _generate(run, spec, n_frames: int, seed: int = 0, **opts):
    from edgeth.runtime_py.pipelines import SeededNoise, get_pipeline
    from edgeth.runtime_py.torch_backend import torch_call

    fam = get_model("mdcf")
    rng = np.random.default_rng(0)  # one portrait and clip; `seed` draws the diffusion noise
    image = rng.random((64, 64, 3), dtype=np.float32)
    audio = (rng.standard_normal(n_frames * 640) * 0.1).astype(np.float32)
    return get_pipeline(spec.kind)(spec, torch_call(fam.programs(run)), image=image, audio=audio,
                                   noise=SeededNoise(seed), **opts)


def test_windowed_and_global_nar_agree_on_a_short_sequence(run):
    from edgeth.runtime_py.parity import cosine, psnr_db

    spec = get_model("mdcf").pipeline(run)
    assert (spec.window["length"], spec.window["overlap"]) == (20, 6)
    win = _generate(run, spec, 34, nar="windowed")
    glob = _generate(run, dataclasses.replace(spec, window={**spec.window, "length": 34, "overlap": 0}), 34, nar="global")
    assert (win.extras["windows"], glob.extras["windows"]) == (2, 1)
    assert win.frames.shape == glob.frames.shape == (34, 64, 64, 3)
    motion = lambda r: r.extras["x0"] - r.extras["x0"].mean(0, keepdims=True)  # noqa: E731
    agree = cosine(motion(glob), motion(win))
    assert agree > AGREE_COSINE
    other = _generate(run, dataclasses.replace(spec, window={**spec.window, "length": 34, "overlap": 0}), 34, seed=1,
                      nar="global")
    assert cosine(motion(glob), motion(other)) < min(0.6, agree - 0.2)  # the bound tells samples apart
    assert psnr_db(glob.frames, win.frames, peak=1.0) > AGREE_PSNR_DB
    assert set(spec.stages) <= set(win.extras) | {"frames"}
    with pytest.raises(Exception, match="global NAR over 34 frames"):
        _generate(run, spec, 34, nar="global")


def test_train_flags_are_checked_per_family(tmp_path, capsys):
    from edgeth.cli import main

    out = str(tmp_path / "o")
    for args, msg in ((["ifmdm", "--phase", "lmae"], "ifmdm does not take --phase"),
                      (["mdcf", "--phase", "x"], "--phase x unknown"),
                      (["mdcf", "--end-to-end", "--phase", "fde"], "no separate FDE phase")):
        with pytest.raises(SystemExit) as e:
            main(["train", *args, "--data", str(tmp_path), "--out", out])
        err = capsys.readouterr().err
        assert e.value.code == 2 and msg in err and "Traceback" not in err, err
