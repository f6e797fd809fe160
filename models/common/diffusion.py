"""Torch side of the diffusion schedule, for training: the arrays come from
edgeth.sampling.DiffusionSchedule, so training and the numpy host sampler agree exactly.

DDPM training (Ho et al. 2020): draw t uniformly, noise x0 to x_t, regress the target of the
schedule's prediction type (epsilon, sample = x0, or v).

Shape legend: B batch; x0 any [B, ...] float tensor; t [B] int64 timesteps.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from edgeth.sampling import DiffusionSchedule


class TorchSchedule(nn.Module):
    """Holds sqrt(ab) and sqrt(1 - ab) as buffers (move with .to(device))."""

    def __init__(self, schedule: DiffusionSchedule):
        super().__init__()
        self.schedule = schedule
        ab = torch.tensor(schedule.alphas_cumprod, dtype=torch.float64)
        self.register_buffer("sqrt_ab", ab.sqrt().float(), persistent=False)
        self.register_buffer("sqrt_1m_ab", (1 - ab).sqrt().float(), persistent=False)

    @property
    def train_steps(self) -> int:
        return self.schedule.train_steps

    def _bc(self, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return v.reshape(-1, *([1] * (x.dim() - 1)))

    def sample_t(self, batch: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(0, self.train_steps, (batch,), device=device, generator=generator)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return self._bc(self.sqrt_ab[t], x0) * x0 + self._bc(self.sqrt_1m_ab[t], x0) * eps

    def target(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        p = self.schedule.prediction
        if p == "epsilon":
            return eps
        if p == "sample":
            return x0
        return self._bc(self.sqrt_ab[t], x0) * eps - self._bc(self.sqrt_1m_ab[t], x0) * x0  # v

    def to_x0(self, x_t: torch.Tensor, t: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The clean sample implied by a model output (for auxiliary losses on x0)."""
        a, s = self._bc(self.sqrt_ab[t], x_t), self._bc(self.sqrt_1m_ab[t], x_t)
        p = self.schedule.prediction
        if p == "epsilon":
            return (x_t - s * out) / a.clamp_min(1e-4)
        if p == "sample":
            return out
        return a * x_t - s * out
