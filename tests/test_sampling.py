"""edgeth.sampling: schedules, DDIM steps and the loop; the torch training schedule agrees."""
from __future__ import annotations

import numpy as np
import pytest

from edgeth.errors import InputError
from edgeth.sampling import DiffusionSchedule, ddim_sample, ddim_step, q_sample, split_prediction


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedule_monotone(kind):
    s = DiffusionSchedule(beta_schedule=kind)
    ab = s.alphas_cumprod
    assert ab.shape == (1000,)
    assert np.all(np.diff(ab) < 0) and 0 < ab[-1] < 0.01 and ab[0] > 0.99


@pytest.mark.parametrize("spacing", ["trailing", "leading"])
@pytest.mark.parametrize("steps", [1, 7, 50, 1000])
def test_timesteps(spacing, steps):
    ts = DiffusionSchedule(spacing=spacing).timesteps(steps)
    assert len(ts) == steps and ts.dtype == np.int64
    assert np.all(np.diff(ts) < 0) and ts.min() >= 0 and ts.max() <= 999
    if spacing == "trailing":
        assert ts[0] == 999


def test_timesteps_out_of_range():
    with pytest.raises(InputError):
        DiffusionSchedule().timesteps(0)
    with pytest.raises(InputError):
        DiffusionSchedule(train_steps=100).timesteps(101)


@pytest.mark.parametrize("pred", ["epsilon", "sample", "v_prediction"])
def test_prediction_types_agree(pred):
    """The exact model output of every parameterisation recovers x0 and eps."""
    rng = np.random.default_rng(0)
    s = DiffusionSchedule(prediction=pred)
    ab = s.alphas_cumprod
    x0, eps = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 3))
    t = 400
    xt = q_sample(x0, eps, t, ab)
    a, b = np.sqrt(ab[t]), np.sqrt(1 - ab[t])
    out = {"epsilon": eps, "sample": x0, "v_prediction": a * eps - b * x0}[pred]
    x0h, epsh = split_prediction(xt, out, ab[t], pred)
    np.testing.assert_allclose(x0h, x0, atol=1e-5)
    np.testing.assert_allclose(epsh, eps, atol=1e-5)


def test_oracle_denoiser_recovers_data():
    """With the true x0 as the model output, deterministic DDIM lands exactly on x0."""
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((1, 8, 4)).astype(np.float32)
    s = DiffusionSchedule(prediction="sample")
    out = ddim_sample(lambda x, t: x0, rng.standard_normal(x0.shape).astype(np.float32), s, 10)
    np.testing.assert_allclose(out, x0, atol=1e-5)


def test_ddim_deterministic_and_noise_dependent():
    s = DiffusionSchedule(prediction="epsilon")
    model = lambda x, t: 0.5 * x  # noqa: E731
    xT = np.random.default_rng(2).standard_normal((1, 6, 3)).astype(np.float32)
    a = ddim_sample(model, xT, s, 20)
    b = ddim_sample(model, xT.copy(), s, 20)
    np.testing.assert_array_equal(a, b)
    c = ddim_sample(model, xT + 0.1, s, 20)
    assert np.abs(a - c).max() > 1e-4


def test_eta_uses_named_noise():
    s = DiffusionSchedule(prediction="epsilon")
    xT = np.ones((1, 4, 2), np.float32)
    seen = []

    def noise(i, shape):
        seen.append(i)
        return np.zeros(shape, np.float32)

    ddim_sample(lambda x, t: 0 * x, xT, s, 5, eta=0.0, noise=noise)
    assert seen == []
    ddim_sample(lambda x, t: 0 * x, xT, s, 5, eta=1.0, noise=noise)
    assert seen == [0, 1, 2, 3]  # the last step goes to x0 without noise
    with pytest.raises(ValueError):
        ddim_step(xT, xT, 500, 400, s.alphas_cumprod, "epsilon", eta=1.0, noise=None)


def test_inpainting_keeps_known_frames():
    s = DiffusionSchedule(prediction="sample")
    rng = np.random.default_rng(3)
    kv = rng.standard_normal((1, 10, 2)).astype(np.float32)
    km = np.zeros((1, 10, 1), np.float32)
    km[0, :3] = 1
    out = ddim_sample(lambda x, t: np.zeros_like(x), rng.standard_normal(kv.shape).astype(np.float32), s, 8, known=(kv, km))
    np.testing.assert_allclose(out[0, :3], kv[0, :3])
    np.testing.assert_allclose(out[0, 3:], 0, atol=1e-6)


def test_spec_roundtrip_and_torch_schedule_matches():
    torch = pytest.importorskip("torch")
    from edgeth.models.common.diffusion import TorchSchedule

    s = DiffusionSchedule(beta_schedule="linear", prediction="v_prediction")
    assert DiffusionSchedule.from_json({**s.to_json(), "steps": 50, "guidance": 2.0}) == s
    ts = TorchSchedule(s)
    x0, eps = torch.randn(3, 5, 2), torch.randn(3, 5, 2)
    t = torch.tensor([0, 500, 999])
    xt = ts.q_sample(x0, t, eps)
    for i in range(3):
        ref = q_sample(x0[i].numpy(), eps[i].numpy(), int(t[i]), s.alphas_cumprod)
        np.testing.assert_allclose(xt[i].numpy(), ref, atol=1e-5)
    np.testing.assert_allclose(ts.to_x0(xt, t, ts.target(x0, t, eps)).numpy(), x0.numpy(), atol=1e-4)
