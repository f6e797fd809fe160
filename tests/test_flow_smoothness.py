"""Flow Smoothness as the Microscope paper defines it (Eq. 13) on Horn-Schunck flow."""
from __future__ import annotations

import numpy as np

from edgeth.runtime_py import parity as P
from edgeth.runtime_py.optical_flow import flow_field_smoothness, horn_schunck, video_flow_smoothness

Y, X = np.mgrid[0:48, 0:48]


def _img(shift: float) -> np.ndarray:
    return (0.5 + 0.25 * np.sin((X - shift) / 5.0) * np.cos(Y / 7.0))[..., None].repeat(3, -1)


def test_horn_schunck_finds_a_translation_and_eq13_is_zero_for_uniform_flow():
    f = horn_schunck(_img(0), _img(1), iters=120)
    u, v = f[12:36, 12:36].mean((0, 1))
    assert 0.6 < u < 1.2 and abs(v) < 0.05, (u, v)  # HS's smoothness prior shrinks it a little
    assert flow_field_smoothness(np.ones((8, 8, 2))) == 0.0
    ramp = np.stack([X[:8, :8] * 0.5, np.zeros((8, 8))], -1)  # du/dx = 0.5 everywhere
    assert abs(flow_field_smoothness(ramp) - 0.5) < 1e-9


def test_video_flow_smoothness_rises_with_flow_spikes_and_is_reported_by_compare_frames():
    vid = np.stack([_img(0.5 * t) for t in range(6)]).astype(np.float32)
    noisy = np.clip(vid + np.random.default_rng(0).normal(0, 0.02, vid.shape), 0, 1).astype(np.float32)
    smooth, spiky = video_flow_smoothness(vid), video_flow_smoothness(noisy)
    assert spiky > 1.5 * smooth, (smooth, spiky)
    c = P.compare_frames(vid, noisy)
    assert c.metrics["flow_smoothness_eq13"] == spiky and c.metrics["flow_smoothness_eq13_ref"] == smooth
    assert video_flow_smoothness(vid[:1]) == 0.0
    big = vid.repeat(2, axis=1).repeat(2, axis=2)  # 96 px: analysed at 48 px, the same figure
    assert abs(video_flow_smoothness(big) - smooth) < 1e-9
