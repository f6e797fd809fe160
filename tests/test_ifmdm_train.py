"""IF-MDM trained briefly on the synthetic corpus (session fixture `ifmdm_tiny_run`): losses fall,
reconstruction improves on held-out identities, the sampler is deterministic and responds to
guidance and m^sigma, windows chain smoothly, and `edgeth generate` writes the right mp4."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgeth.runtime_py.pipelines import SeededNoise, get_pipeline


@pytest.fixture(scope="module")
def ref(ifmdm_tiny_run):
    """(run, spec, call) of the trained tiny run on the torch backend."""
    import torch

    from edgeth.models import get_model
    from edgeth.runtime_py.torch_backend import torch_call

    torch.set_num_threads(2)
    fam = get_model("ifmdm")
    run = fam.load(ifmdm_tiny_run)
    return run, fam.pipeline(run), torch_call(fam.programs(run))


@pytest.fixture(scope="module")
def val_clips(synth_corpus):
    from edgeth.data.dataset import load_corpus
    from ifmdm_support import corpus_root

    return load_corpus(corpus_root(synth_corpus), size=64, split="val")


def _log(run_dir, stage):
    from edgeth.train.checkpoint import read_jsonl, stage_paths

    rows = read_jsonl(stage_paths(run_dir, stage)["log"])
    assert len(rows) >= 4, rows
    return rows


def test_run_dir_is_complete(ifmdm_tiny_run):
    d = json.loads((ifmdm_tiny_run / "ifmdm.json").read_text())
    assert d["family"] == "ifmdm" and d["preset"] == "tiny" and d["stages"] == ["stage1", "stage2"]
    assert len(d["stats"]["residual_scale"]) == 20 and d["stats"]["sigma_default"] > 0
    for f in ("stage1.safetensors", "stage2.safetensors", "stage1.json", "stage2.json"):
        assert (ifmdm_tiny_run / f).is_file(), f


def test_stage1_loss_falls_and_psnr_rises(ifmdm_tiny_run, ref, val_clips):
    from edgeth.models.ifmdm.run import fresh_run
    from edgeth.models.ifmdm.training import reconstruction_eval

    rows = _log(ifmdm_tiny_run, "stage1")
    first, last = rows[:2], rows[-2:]
    assert np.mean([r["loss"] for r in last]) < 0.9 * np.mean([r["loss"] for r in first])
    assert np.mean([r["psnr"] for r in last]) > np.mean([r["psnr"] for r in first]) + 0.5
    assert np.mean([r["mouth"] for r in last]) < 0.7 * np.mean([r["mouth"] for r in first])  # the mouth box too
    run = ref[0]
    trained = reconstruction_eval(run.model, val_clips)  # held-out identities
    untrained = reconstruction_eval(fresh_run(run.cfg).model, val_clips)
    assert trained["psnr"] > untrained["psnr"] + 1.0, (trained, untrained)


def test_stage2_loss_falls(ifmdm_tiny_run):
    rows = _log(ifmdm_tiny_run, "stage2")
    assert np.mean([r["diffusion"] for r in rows[-2:]]) < 0.7 * np.mean([r["diffusion"] for r in rows[:2]])


def _drive(ref, clip, **kw):
    run, spec, call = ref
    kw.setdefault("noise", SeededNoise(0))
    kw.setdefault("steps", 10)
    return get_pipeline(spec.kind)(spec, call, image=clip.frames[0].astype(np.float32) / 255, audio=clip.audio, **kw)


def test_sampler_deterministic_seed_and_guidance(ref, val_clips):
    c = val_clips[0]
    a, b = _drive(ref, c), _drive(ref, c)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.extras["motion"], b.extras["motion"])
    other_seed = _drive(ref, c, noise=SeededNoise(1))
    assert np.abs(other_seed.extras["motion"] - a.extras["motion"]).max() > 1e-3
    g1, g3 = _drive(ref, c, guidance=1.0), _drive(ref, c, guidance=3.0)
    assert np.abs(g1.extras["motion"] - g3.extras["motion"]).max() > 1e-3
    assert np.abs(a.extras["motion"]).max() <= 1.0
    assert a.frames.min() >= 0.0 and a.frames.max() <= 1.0


def test_motion_std_controls_motion_degree(ref, val_clips):
    """Raising m^sigma raises the std of the generated motion (monotonic over 3 values)."""
    base = ref[1].window["motion_std"]
    c = val_clips[0]
    stds = []
    for k in (0.5, 1.0, 2.0):
        m = _drive(ref, c, motion_std=base * k, motion_mean_mode="stable").extras["motion"]
        stds.append(float(m.std(axis=0).mean()))
    assert stds[0] < stds[1] < stds[2], stds


def test_windows_chain_without_jumps(ref, val_clips):
    c = val_clips[0]
    res = _drive(ref, c, motion_mean_mode="evolving")
    m, starts = res.extras["motion"], res.extras["window_starts"]
    o = ref[1].window["overlap"]
    assert len(starts) >= 2, "the val clip must span several windows"
    step = np.linalg.norm(np.diff(m, axis=0), axis=1)  # step[f] = |m[f+1] - m[f]|
    seams = [s + o - 1 for s in starts[1:] if s + o < len(m)]
    inside = np.delete(step, seams)
    assert step[seams].max() <= inside.max(), (step[seams], inside.max())


def _cli(argv, capsys):
    from edgeth.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out + out.err


def test_generate_writes_mp4(ifmdm_tiny_run, tmp_path, capsys):
    from edgeth.data.synth import sample_inputs
    from edgeth.data.video import downscale_box, read_video

    png, wav, gt = sample_inputs(tmp_path, size=96, seconds=2.0, seed=5)  # 96 px: resized to 64, pasted back
    out = tmp_path / "out.mp4"
    code, text = _cli(["generate", "--ckpt", str(ifmdm_tiny_run), "--image", str(png), "--audio", str(wav),
                       "-o", str(out), "--steps", "10", "--guidance", "2.0", "--seed", "0", "--quiet",
                       "--no-crop"], capsys)  # a synthetic portrait is framed already (and Haar misses it)
    assert code == 0, text
    frames, fps = read_video(out)
    # the 96 px test photo, pasted back at its resolution, upscaled x3 by the standard writer
    assert fps == 25 and len(frames) == 50 and frames.shape[1:] == (288, 288, 3)
    import av

    with av.open(str(out)) as f:
        assert len(f.streams.audio) == 1  # speech muxed in
    crops = {}
    for quality in ("lossless", "standard"):  # the model-size crop (--no-paste), bit-exact vs the standard writer
        crops[quality] = tmp_path / f"{quality}.mp4"
        code, text = _cli(["generate", "--ckpt", str(ifmdm_tiny_run), "--image", str(png), "--audio", str(wav),
                           "-o", str(crops[quality]), "--steps", "10", "--seed", "0", "--quiet", "--no-crop",
                           "--no-paste", "--video-quality", quality], capsys)
        assert code == 0, text
    exact, _ = read_video(crops["lossless"])
    assert exact.shape[1:] == (64, 64, 3)
    standard, _ = read_video(crops["standard"])
    assert standard.shape[1:] == (256, 256, 3)  # 64 px upscaled x4 before 4:2:0
    err = downscale_box(standard, 4).astype(float) - exact
    assert 10 * np.log10(255.0**2 / np.mean(err**2)) >= 40.0  # the standard file keeps the face


def test_generate_errors(ifmdm_tiny_run, tmp_path, capsys):
    from edgeth.data.synth import sample_inputs

    png, wav, _ = sample_inputs(tmp_path, size=64, seconds=1.0, seed=6)
    out = str(tmp_path / "o.mp4")
    base = ["generate", "--image", str(png), "--audio", str(wav), "-o", out, "--quiet"]
    code, text = _cli([*base, "--ckpt", str(tmp_path / "nope")], capsys)
    assert code == 2 and "error:" in text and "does not exist" in text
    code, text = _cli([*base, "--ckpt", str(ifmdm_tiny_run), "--video-quality", "best"], capsys)
    assert code == 2 and "standard, lossless, compact" in text
    empty = tmp_path / "empty_run"
    empty.mkdir()
    (empty / "ifmdm.json").write_text((ifmdm_tiny_run / "ifmdm.json").read_text())
    code, text = _cli([*base, "--ckpt", str(empty)], capsys)
    assert code == 2 and "weights" in text
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    code, text = _cli(["generate", "--ckpt", str(ifmdm_tiny_run), "--image", str(bad), "--audio", str(wav), "-o", out,
                       "--quiet"], capsys)
    assert code == 2 and "image" in text
    code, text = _cli(["generate", "--ckpt", str(ifmdm_tiny_run), "--image", str(png), "--audio",
                       str(tmp_path / "missing.wav"), "-o", out, "--quiet"], capsys)
    assert code == 2 and "audio" in text
    assert not (tmp_path / "o.mp4").exists()


def test_train_cli_errors(tmp_path, capsys):
    code, text = _cli(["train", "nosuchfamily", "--data", str(tmp_path), "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "ifmdm" in text
    code, text = _cli(["train", "ifmdm", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "error:" in text
    code, text = _cli(["train", "ifmdm", "--data", str(tmp_path), "--preset", "huge", "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "preset" in text
