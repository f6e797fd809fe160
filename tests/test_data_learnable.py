"""The mouth is learnable from audio, and the motion probe reads it back from pixels."""
from __future__ import annotations

import numpy as np

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


def test_probe_recovers_mouth_opening_on_held_out_identities(synth_corpus):
    va = load_corpus(synth_corpus, split="val")
    for c in va:
        m = probe.measure(c.frames)
        assert probe.pearson(m["mouth_open"], c.gt["mouth_open"]) >= 0.95
        assert probe.pearson(m["blink"], c.gt["blink"]) >= 0.8
    # any resolution: the same frames upscaled read the same
    big = np.repeat(np.repeat(va[0].frames, 2, axis=1), 2, axis=2)
    assert probe.lip_sync_score(big, va[0].gt["mouth_open"]) >= 0.95
    # and a shuffled ground truth does not score: the probe measures this clip's mouth
    rng = np.random.default_rng(0)
    assert abs(probe.lip_sync_score(va[0].frames, rng.permutation(va[0].gt["mouth_open"]))) < 0.4
