"""Exponential moving average of a model's weights (the weights `fit` saves when EMA is on).

shadow <- d * shadow + (1 - d) * weight after every optimizer step, for every floating-point
entry of the state_dict (parameters and float buffers); integer buffers (e.g. BatchNorm's
num_batches_tracked) are copied. The decay warms up as d = min(decay, (1 + n) / (10 + n)) with
n the number of updates so far, so early EMA weights are not dominated by the random init.
"""
from __future__ import annotations

import torch


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.num_updates = 0
        self.shadow: dict[str, torch.Tensor] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        n = self.num_updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        d = self.current_decay()
        floats_s, floats_m = [], []
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if s.is_floating_point():
                floats_s.append(s)
                floats_m.append(v.detach().to(s.dtype))
            else:
                s.copy_(v)
        if floats_s:
            torch._foreach_lerp_(floats_s, floats_m, 1.0 - d)
        self.num_updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, tensors: dict[str, torch.Tensor], num_updates: int) -> None:
        for k, s in self.shadow.items():
            s.copy_(tensors[k])
        self.num_updates = int(num_updates)

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        """Overwrite the model's weights with the EMA weights."""
        model.load_state_dict(self.shadow)
