"""Calibration capture on IF-MDM tiny: each program sees the inputs it sees in real use, cached by content."""
from __future__ import annotations

import numpy as np
import pytest
import torch

STEPS = 6


@pytest.fixture(scope="module")
def ifmdm():
    from edgeth.models import get_model

    torch.set_num_threads(1)
    fam = get_model("ifmdm")
    run = fam.fresh("tiny", seed=0)
    torch.manual_seed(0)
    with torch.no_grad():  # an untrained run zero-initialises its output layers; give them weights
        for prm in run.model.parameters():
            if prm.dim() >= 2 and not prm.any():
                prm.normal_(0.0, 0.05)
    return fam.programs(run), fam.pipeline(run)


def _clips(n=2, seconds=1.0):
    rng = np.random.default_rng(3)
    return [(rng.random((64, 64, 3)).astype(np.float32),
             (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)) for _ in range(n)]


def test_capture_records_every_programs_real_inputs(ifmdm, tmp_path):
    from edgeth.quantize.calibrate import cached_capture
    from edgeth.sampling import DiffusionSchedule

    programs, spec = ifmdm
    by_name = {p.name: p for p in programs}
    clips = _clips()
    cs = cached_capture(tmp_path, programs, spec, clips, steps=STEPS)
    assert cs.source["cached"] is False and (tmp_path / f"calib-{cs.key}.npz").exists()
    # shapes: every recorded call matches the program's input specs
    for name, p in by_name.items():
        assert cs.count(name) > 0, name
        for call in cs.samples[name]:
            assert [a.shape for a in call] == [tuple(s.shape) for s in p.inputs], name
    # the denoiser sees every timestep of the DDIM schedule, once per window (x2 clips), not random t
    sched = DiffusionSchedule.from_json(spec.sampler)
    t_seen = sorted({float(c[1][0]) for c in cs.samples["motion_denoiser"]})
    assert len(t_seen) == STEPS
    windows = cs.count("audio_encoder")
    assert cs.count("motion_denoiser") == STEPS * windows
    assert max(t_seen) <= sched.train_steps - 1 and min(t_seen) >= 0
    # x_t follows the reverse process: the first step sees pure noise (std ~1), later steps less
    first = [c[0] for c in cs.samples["motion_denoiser"] if float(c[1][0]) == max(t_seen)]
    assert 0.8 < float(np.std(first)) < 1.2
    # the renderer gets real motion codes from the sampler (clipped to [-1, 1], varying per call),
    # and the portrait features of each clip, not the program's example inputs
    st = cs.stats("renderer")
    motion = st[-1]
    assert motion["min"] >= -1.0 and motion["max"] <= 1.0 and motion["distinct"] == cs.count("renderer")
    ex_motion = by_name["renderer"].example_inputs[-1].numpy()
    assert not any(np.array_equal(c[-1], ex_motion) for c in cs.samples["renderer"])
    assert st[0]["distinct"] == len(clips)  # a^0: one portrait per clip
    # the audio frontend sees the clips' waveform windows; the encoder their log-mel (natural log,
    # floored at log(3e-3) = -5.8; speech bins well above the floor)
    aud = cs.stats("audio_frontend")[0]
    assert cs.count("audio_frontend") == windows
    assert aud["distinct"] == windows and 0.05 < aud["std"] < 0.15
    mel = cs.stats("audio_encoder")[0]
    assert mel["distinct"] == windows and mel["min"] >= -5.9 and mel["min"] + 2.0 < mel["max"] < 10.0


def test_capture_cache_is_keyed_by_weights_and_clips(ifmdm, tmp_path):
    from edgeth.quantize.calibrate import cache_key, cached_capture

    programs, spec = ifmdm
    clips = _clips(1, 0.5)
    a = cached_capture(tmp_path, programs, spec, clips, steps=2)
    b = cached_capture(tmp_path, programs, spec, clips, steps=2)
    assert b.key == a.key and b.source["cached"] is True
    for name in a.programs():
        for ca, cb in zip(a.samples[name], b.samples[name]):
            assert all(np.array_equal(x, y) for x, y in zip(ca, cb))
    other = [(clips[0][0] * 0.5, clips[0][1])]
    assert cache_key(programs, spec, other, steps=2) != a.key
    with torch.no_grad():
        programs[-1].module.renderer.parameters().__next__().add_(1e-3)
    try:
        assert cache_key(programs, spec, clips, steps=2) != a.key
    finally:
        with torch.no_grad():
            programs[-1].module.renderer.parameters().__next__().sub_(1e-3)
