"""The one diffusion sampler: DDPM noise schedules and a deterministic DDIM loop in numpy.

Host code shared by the PyTorch reference and every exported backend: it never imports
torch, and the denoiser is a callable. Training derives its torch schedule arrays from
`DiffusionSchedule.alphas_cumprod` (edgeth.models.common.diffusion), so the model is
trained on exactly the schedule the device samples with.

References: DDPM (Ho et al. 2020) for the forward process and schedules, DDIM (Song et al.
2021) for the deterministic sampler (eta = 0) and its stochastic generalisation (eta > 0),
"Common diffusion noise schedules and sample steps are flawed" (Lin et al. 2024) for
trailing timestep spacing. Classifier-free guidance (Ho & Salimans 2022) is the driver's
business: it hands the loop an already-guided model output.

Shape legend: x is any float array (e.g. [B, T, D] motion windows); t a scalar timestep.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

from edgeth.errors import InputError

PREDICTIONS = ("epsilon", "sample", "v_prediction")
SCHEDULES = ("linear", "cosine")
SPACINGS = ("trailing", "leading")


@dataclass(frozen=True)
class DiffusionSchedule:
    """Everything a device needs to rebuild the schedule (stored in PipelineSpec.sampler)."""

    train_steps: int = 1000
    beta_schedule: str = "cosine"
    beta_start: float = 1e-4  # linear only
    beta_end: float = 0.02  # linear only
    prediction: str = "sample"  # what the denoiser outputs
    spacing: str = "trailing"

    def __post_init__(self):
        if self.beta_schedule not in SCHEDULES:
            raise ValueError(f"beta_schedule {self.beta_schedule!r} not in {SCHEDULES}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction {self.prediction!r} not in {PREDICTIONS}")
        if self.spacing not in SPACINGS:
            raise ValueError(f"spacing {self.spacing!r} not in {SPACINGS}")
        if self.train_steps < 2:
            raise ValueError("train_steps must be >= 2")

    # -- arrays ---------------------------------------------------------------------------
    @property
    def betas(self) -> np.ndarray:
        n = self.train_steps
        if self.beta_schedule == "linear":
            return np.linspace(self.beta_start, self.beta_end, n, dtype=np.float64)
        # cosine (Nichol & Dhariwal 2021), betas clipped at 0.999
        s = 0.008
        f = lambda i: math.cos((i / n + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
        return np.array([min(1 - f(i + 1) / f(i), 0.999) for i in range(n)], dtype=np.float64)

    @property
    def alphas_cumprod(self) -> np.ndarray:
        return np.cumprod(1.0 - self.betas)

    def timesteps(self, steps: int) -> np.ndarray:
        """Descending DDIM timesteps (int64), `steps` of them, in [0, train_steps)."""
        n = self.train_steps
        if not 1 <= int(steps) <= n:
            raise InputError(f"sampler steps {steps} out of range", f"choose 1..{n} (the paper uses 50-1000)")
        steps = int(steps)
        if self.spacing == "trailing":
            ts = np.round(np.arange(n, 0, -n / steps)).astype(np.int64) - 1
        else:
            ts = (np.arange(steps) * (n // steps)).astype(np.int64)[::-1]
        return np.clip(ts, 0, n - 1)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "DiffusionSchedule":
        keys = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in keys})


def split_prediction(x_t: np.ndarray, out: np.ndarray, ab_t: float, prediction: str) -> tuple[np.ndarray, np.ndarray]:
    """(x0, eps) implied by a denoiser output of the given prediction type."""
    x_t = x_t.astype(np.float64)
    out = out.astype(np.float64)
    a, s = math.sqrt(ab_t), math.sqrt(1.0 - ab_t)
    if prediction == "epsilon":
        return (x_t - s * out) / a, out
    if prediction == "sample":
        return out, (x_t - a * out) / max(s, 1e-12)
    if prediction == "v_prediction":
        return a * x_t - s * out, s * x_t + a * out
    raise ValueError(f"prediction {prediction!r} not in {PREDICTIONS}")


def ddim_step(x_t: np.ndarray, out: np.ndarray, t: int, t_prev: int, alphas_cumprod: np.ndarray, prediction: str,
              eta: float = 0.0, noise: np.ndarray | None = None, clip: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One DDIM update x_t -> x_{t_prev} (t_prev < 0 means the clean sample). Returns (x_prev, x0)."""
    ab_t = float(alphas_cumprod[t])
    ab_prev = float(alphas_cumprod[t_prev]) if t_prev >= 0 else 1.0
    x0, eps = split_prediction(x_t, out, ab_t, prediction)
    if clip is not None:
        x0 = np.clip(x0, -clip, clip)
        eps = (x_t.astype(np.float64) - math.sqrt(ab_t) * x0) / max(math.sqrt(1.0 - ab_t), 1e-12)
    sigma = 0.0
    if eta > 0 and t_prev >= 0:
        sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab_t)) * math.sqrt(max(1 - ab_t / ab_prev, 0.0))
    x_prev = math.sqrt(ab_prev) * x0 + math.sqrt(max(1.0 - ab_prev - sigma**2, 0.0)) * eps
    if sigma > 0:
        if noise is None:
            raise ValueError("eta > 0 needs a noise tensor")
        x_prev = x_prev + sigma * noise.astype(np.float64)
    return x_prev.astype(np.float32), x0.astype(np.float32)


def q_sample(x0: np.ndarray, eps: np.ndarray, t: int, alphas_cumprod: np.ndarray) -> np.ndarray:
    """Forward process: x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps."""
    ab = float(alphas_cumprod[t])
    return (math.sqrt(ab) * x0.astype(np.float64) + math.sqrt(1 - ab) * eps.astype(np.float64)).astype(np.float32)


def ddim_sample(model: Callable[[np.ndarray, int], np.ndarray], x_T: np.ndarray, schedule: DiffusionSchedule, steps: int,
                *, eta: float = 0.0, noise: Callable[[int, tuple[int, ...]], np.ndarray] | None = None,
                known: tuple[np.ndarray, np.ndarray] | None = None, clip: float | None = None,
                progress: Callable[[int], None] | None = None) -> np.ndarray:
    """The DDIM loop. `model(x_t, t) -> output` (already guided) of `schedule.prediction` type.

    noise(i, shape) supplies per-step noise when eta > 0 (never called at eta = 0).
    known = (values, mask): inpainting by replacement — before every step the masked part of
    x_t is set to the forward-noised known values, using x_T's own noise, so the result is
    deterministic (used to chain windows through overlapping frames). Returns x0 [like x_T].
    """
    ab = schedule.alphas_cumprod
    ts = schedule.timesteps(steps)
    x = np.asarray(x_T, dtype=np.float32)
    eps_T = x.copy()
    if known is not None:
        kv, km = (np.asarray(a, dtype=np.float32) for a in known)
    x0 = x
    for i, t in enumerate(ts):
        t = int(t)
        if known is not None:
            x = np.where(km > 0, q_sample(kv, eps_T, t, ab), x).astype(np.float32)
        out = np.asarray(model(x, t), dtype=np.float32)
        t_prev = int(ts[i + 1]) if i + 1 < len(ts) else -1
        n = noise(i, x.shape) if (eta > 0 and t_prev >= 0 and noise is not None) else None
        x, x0 = ddim_step(x, out, t, t_prev, ab, schedule.prediction, eta=eta, noise=n, clip=clip)
        if progress is not None:
            progress(1)
    if known is not None:
        x = np.where(km > 0, kv, x).astype(np.float32)
    return x
