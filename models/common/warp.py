"""Flow-field warping with 4-D grid_sample only (5-D sampling breaks TensorRT and Core ML).

Flows are offsets in normalized [-1, 1] coordinates, channel-first [B, 2, H, W] (x then y),
added to an identity grid that is a constant buffer (static shape, exportable). Sampling is
bilinear with align_corners=False, the combination every target lowers.

`sample_by_gather` is the same bilinear sampling written with index_select and elementwise
ops, for runtimes whose grid-sample kernel is slow: ExecuTorch runs `grid_sampler_2d` on its
single-threaded portable kernel (XNNPACK has no grid sample), and its ExecuTorch lowering swaps
the op for this formulation on wide maps (targets/executorch/exporter.py).

Shape legend: B batch, C channels, H/W spatial size of the sampled map, H'/W' of the grid.
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


# Below this width each gathered corner is weighted channel-first: XNNPACK broadcasts a weight
# over a short innermost dim slowly (3 channels x 256^2 on ExecuTorch, 2 threads: 2.9 ms
# channel-first vs 3.9 ms channels-last; at 16 channels channels-last is faster, 1.3 vs 1.5 ms).
NARROW_CHANNELS = 8


def sample_by_gather(x: torch.Tensor, grid: torch.Tensor, padding_mode: str = "border",
                     align_corners: bool = False) -> torch.Tensor:
    """F.grid_sample(x, grid, "bilinear", padding_mode, align_corners) for x [B, C, H, W] and
    grid [B, H', W', 2] (grid_sample's layout), as four row gathers of the channels-last map and
    a weighted sum: per-pixel index arithmetic + one memcpy of C values per corner, instead of
    per-value sampling (narrow maps are weighted channel-first, see NARROW_CHANNELS). Coordinates are computed in float32 whatever x's dtype (fp16 cannot hold
    pixel indices past 2048). Equal to grid_sample up to float rounding (~5e-7 on unit data)."""
    if padding_mode not in ("border", "zeros"):
        raise ValueError(f"sample_by_gather supports border and zeros padding, not {padding_mode!r}")
    b, c, h, w = x.shape
    _, ho, wo, _ = grid.shape
    g = grid.float()
    if align_corners:
        ix, iy = (g[..., 0] + 1) * 0.5 * (w - 1), (g[..., 1] + 1) * 0.5 * (h - 1)
    else:
        ix, iy = ((g[..., 0] + 1) * w - 1) * 0.5, ((g[..., 1] + 1) * h - 1) * 0.5
    if padding_mode == "border":
        ix, iy = ix.clamp(0, w - 1), iy.clamp(0, h - 1)
    x0, y0 = ix.floor(), iy.floor()
    wx, wy = ix - x0, iy - y0
    corners = []  # (column, row, weight) of the four neighbours
    for cx, fx in ((x0, 1 - wx), (x0 + 1, wx)):
        for cy, fy in ((y0, 1 - wy), (y0 + 1, wy)):
            weight = fx * fy
            if padding_mode == "zeros":  # out-of-map neighbours contribute nothing; cx, cy are whole
                # numbers, so (cx + 1).clamp(0, 1) is 1 iff cx >= 0: arithmetic XNNPACK runs, no comparisons
                weight = (weight * (cx + 1).clamp(0, 1) * (w - cx).clamp(0, 1)
                          * (cy + 1).clamp(0, 1) * (h - cy).clamp(0, 1))
            corners.append((cx.clamp(0, w - 1), cy.clamp(0, h - 1), weight))
    base = 0.0 if b == 1 else (torch.arange(b, dtype=torch.float32, device=x.device) * float(h * w)).view(b, 1, 1)
    rows = x.permute(0, 2, 3, 1).reshape(b * h * w, c)
    narrow = c < NARROW_CHANNELS
    out = None
    for cx, cy, weight in corners:
        idx = (base + cy * w + cx).reshape(-1).to(torch.int64)
        g = rows.index_select(0, idx).reshape(b, ho, wo, c)
        weight = weight.to(x.dtype)
        term = g.permute(0, 3, 1, 2) * weight[:, None] if narrow else g * weight[..., None]
        out = term if out is None else out + term
    return out if narrow else out.permute(0, 3, 1, 2)


class FlowWarp(nn.Module):
    """Warps a fixed-size map by a flow of the same size: identity grid held as a buffer."""

    def __init__(self, size: int, padding_mode: str = "border"):
        super().__init__()
        self.padding_mode = padding_mode
        self.register_buffer("grid", identity_grid(size, size), persistent=False)

    def forward(self, x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return warp(x, self.grid + flow, self.padding_mode)
