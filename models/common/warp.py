"""Flow-field warping with 4-D grid_sample only (5-D sampling breaks TensorRT and Core ML).

Flows are offsets in normalized [-1, 1] coordinates, channel-first [B, 2, H, W] (x then y),
added to an identity grid that is a constant buffer (static shape, exportable). Sampling is
bilinear with align_corners=False, the combination every target lowers.

Shape legend: B batch, C channels, H/W spatial size of the warped map.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def identity_grid(h: int, w: int) -> torch.Tensor:
    """[1, 2, H, W] pixel-centre coordinates in [-1, 1] (align_corners=False convention)."""
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h * 2 - 1
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w * 2 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=0)[None]


def warp(x: torch.Tensor, grid: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    """Sample x [B, C, H, W] at grid [B, 2, H', W'] (absolute coords) -> [B, C, H', W']."""
    if x.dim() != 4 or grid.dim() != 4:
        raise ValueError("warp takes 4-D tensors only (5-D grid_sample does not export)")
    return F.grid_sample(x, grid.permute(0, 2, 3, 1), mode="bilinear", padding_mode=padding_mode, align_corners=False)


class FlowWarp(nn.Module):
    """Warps a fixed-size map by a flow of the same size: identity grid held as a buffer."""

    def __init__(self, size: int, padding_mode: str = "border"):
        super().__init__()
        self.padding_mode = padding_mode
        self.register_buffer("grid", identity_grid(size, size), persistent=False)

    def forward(self, x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return warp(x, self.grid + flow, self.padding_mode)
