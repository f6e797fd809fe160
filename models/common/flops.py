"""Parameter and FLOP counts for deployable modules (torch.utils.flop_counter.FlopCounterMode).

FlopCounterMode counts matmuls and convolutions (2 FLOPs per multiply-add); elementwise ops,
grid_sample and interpolation are not counted, so figures are a slight lower bound.
"""
from __future__ import annotations

import torch
import torch.nn as nn


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def count_flops(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    """FLOPs of one forward call with these inputs."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = module.training
    module.eval()
    try:
        with FlopCounterMode(display=False) as fc:
            module(*inputs)
        return int(fc.get_total_flops())
    finally:
        module.train(was_training)


def annotate(programs: list, flops: bool = True) -> list:
    """Record each Program's parameter count (meta["params"]) and, with `flops`, FLOPs per call."""
    for p in programs:
        p.meta["params"] = count_params(p.module)
        if flops:
            p.flops = count_flops(p.module, p.example_inputs)
    return programs
