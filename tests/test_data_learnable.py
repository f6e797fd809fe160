"""The mouth is learnable from audio, and the motion probe reads it back from pixels."""
from __future__ import annotations

import numpy as np
import pytest

from edgeth.data import probe
from edgeth.data.dataset import load_corpus


def _frame_features(audio: np.ndarray) -> np.ndarray:
    """Per video frame: its 4 log-mel hops, with ±2 frames of context -> [T, 5*320]."""
    from edgeth.audio import AudioConfig, reference_logmel

    mel = reference_logmel(audio, AudioConfig())  # [4T, 80]
    f = mel.reshape(-1, 4 * mel.shape[1])
    pad = np.pad(f, ((2, 2), (0, 0)), mode="edge")
    return np.concatenate([pad[i:i + len(f)] for i in range(5)], axis=1)


def test_mouth_opening_is_predictable_from_audio_features(synth_corpus):
    tr, va = load_corpus(synth_corpus, split="train"), load_corpus(synth_corpus, split="val")
    x = np.concatenate([_frame_features(c.audio) for c in tr])
    y = np.concatenate([c.gt["mouth_open"] for c in tr])
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xs = np.c_[(x - mu) / sd, np.ones(len(x))]
    w = np.linalg.solve(xs.T @ xs + 30.0 * np.eye(xs.shape[1]), xs.T @ y)  # ridge least squares
    r = [probe.pearson(np.c_[(_frame_features(c.audio) - mu) / sd, np.ones(c.n_frames)] @ w, c.gt["mouth_open"]) for c in va]
    assert min(r) >= 0.8, r


def _held_out_clips(n: int = 4, seconds: float = 2.0, size: int = 64) -> list[dict]:
    """Clips of identities from a seed stream no corpus and no probe fit uses."""
    from edgeth.data.render import sample_identity
    from edgeth.data.synth import _clip_rng, make_clip

    return [make_clip(sample_identity(_clip_rng(777, i, "identity")), _clip_rng(777, i, "clip"), seconds, size)
            for i in range(n)]


def _blur(frames: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(frames.astype(np.float32) / 255, (0, sigma, sigma, 0))


def test_probe_recovers_mouth_opening_on_held_out_identities(synth_corpus):
    clips = [{"frames": c.frames, "gt": c.gt} for c in load_corpus(synth_corpus, split="val")] + _held_out_clips()
    ms = [probe.measure(c["frames"]) for c in clips]
    per_clip = [probe.pearson(m["mouth_open"], c["gt"]["mouth_open"]) for m, c in zip(ms, clips)]

    def pooled(key):
        return probe.pearson(np.concatenate([m[key] for m in ms]), np.concatenate([c["gt"][key] for c in clips]))

    assert pooled("mouth_open") >= 0.95 and min(per_clip) >= 0.9, per_clip  # every held-out frame
    assert pooled("blink") >= 0.8 and pooled("yaw") >= 0.8
    # soft frames (what a small generator makes) and any resolution read the same
    c = clips[0]
    assert probe.lip_sync_score(_blur(c["frames"], 1.0), c["gt"]["mouth_open"]) >= 0.9
    big = np.repeat(np.repeat(c["frames"], 2, axis=1), 2, axis=2)
    assert probe.lip_sync_score(big, c["gt"]["mouth_open"]) >= 0.9
    # and a shuffled ground truth does not score: the probe measures this clip's mouth
    rng = np.random.default_rng(0)
    assert abs(probe.lip_sync_score(c["frames"], rng.permutation(c["gt"]["mouth_open"]))) < 0.4


def test_probe_rejects_non_video_input():
    from edgeth.errors import InputError

    with pytest.raises(InputError, match=r"\[T, H, W, 3\]"):
        probe.measure(np.zeros((64, 64, 3), np.uint8))  # one image, not a clip
    with pytest.raises(InputError):
        probe.measure(np.zeros((0, 64, 64, 3), np.uint8))


def test_probe_cli_scores_a_clip_against_its_ground_truth(synth_corpus, tmp_path):
    import json

    from click.testing import CliRunner

    from edgeth.cli import cli

    r = CliRunner().invoke(cli, ["data", "probe", str(synth_corpus / "clip_0003.mp4"),
                                 "--gt", str(synth_corpus / "clip_0003.json"), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["frames"] == 100 and out["lip_sync"] >= 0.9 and out["correlation"]["blink"] > 0.5
    (tmp_path / "bad.json").write_text("{}")
    r = CliRunner().invoke(cli, ["data", "probe", str(synth_corpus / "clip_0003.mp4"), "--gt", str(tmp_path / "bad.json")])
    assert r.exit_code != 0 and "cannot read ground truth" in str(r.exception)


def test_probe_fits_even_when_first_used_inside_no_grad():
    """The probe is fitted on first use; a benchmark that first measures inside `torch.no_grad()`
    (rendering there) must get a probe, not 'element 0 of tensors does not require grad'."""
    import torch

    cfg = probe.ProbeConfig(identities=8, frames_per_identity=2, render_sizes=(48,), steps=2, batch=8)
    with torch.no_grad():
        net = probe.fit(cfg)
    assert isinstance(net, torch.nn.Module)
