"""The mouth painter shared by every family's renderer (IF-MDM issue 18; VQTalker; MDCF's FDE
decoder, issue 12): a warping renderer does not learn to draw an open mouth from a closed
portrait — the closed mouth has no dark pixels to warp, and a gated generated image collapsed
shut (IF-MDM: even with the ground-truth opening fed in, 600 steps drew none). The painter
adds an ungated, zero-initialised RGB residual on the static mouth box at full resolution,
read from the decoder's last features, the box's current pixels, an optional per-frame code
broadcast over the box (IF-MDM's mouth coefficients), optional per-pixel maps cropped to the
box (MDCF's upsampled flow and visibility [f; m]) and a fixed coordinate grid; faded to zero
over the box's outer third so no seam shows; pasted back by slicing and concatenation (no
pad or scatter, so it lowers on every target).

Shape legend: N frames, C decoder channels, S image size, K code width, E extra map channels,
box (top, bottom, left, right) in pixels.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from edgeth.models.common.layers import ConvAct, to_batch


class MouthPatch(nn.Module):
    """h [N, C, S, S], rgb [N, 3, S, S] in [-1, 1], code [N, K] | None, extra [N, E, S, S] | None
    -> rgb [N, 3, S, S] in [-1, 1], changed only inside the box."""

    def __init__(self, box: tuple[int, int, int, int], channels: int, cin: int, code_dim: int = 0,
                 extra_dim: int = 0):
        super().__init__()
        self.box = tuple(box)
        t, b, l, r = self.box
        c = channels
        ys = torch.linspace(-1, 1, b - t)[:, None].expand(b - t, r - l)
        xs = torch.linspace(-1, 1, r - l)[None, :].expand(b - t, r - l)
        self.register_buffer("grid", torch.stack([ys, xs])[None].clone(), persistent=False)
        # the residual fades to zero over the box's outer third: no seam where the box is pasted back
        # (fading over the outer sixth left a faint line under the chin once the head moved)
        edge = torch.minimum(1 - ys.abs(), 1 - xs.abs())
        self.register_buffer("window", (edge * 3).clamp(max=1)[None, None].clone(), persistent=False)
        self.code = nn.Linear(code_dim, c) if code_dim else None
        self.extra_dim = extra_dim
        self.net = nn.Sequential(ConvAct(cin + 3 + (c if code_dim else 0) + extra_dim + 2, c), ConvAct(c, c),
                                 ConvAct(c, c))
        self.out = nn.Conv2d(c, 3, 3, padding=1)  # a residual on the box: no gate to collapse shut
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, h: torch.Tensor, rgb: torch.Tensor, code: torch.Tensor | None = None,
                extra: torch.Tensor | None = None) -> torch.Tensor:
        t, b, l, r = self.box
        n = h.shape[0]
        box = rgb[:, :, t:b, l:r]
        parts = [h[:, :, t:b, l:r], box]
        if self.code is not None:
            if code is None:
                raise ValueError("this mouth painter reads a code: pass one")
            parts.append(self.code(code)[:, :, None, None].expand(-1, -1, b - t, r - l))
        if self.extra_dim:
            if extra is None or extra.shape[1] != self.extra_dim:
                raise ValueError(f"this mouth painter reads {self.extra_dim} extra map channels")
            parts.append(extra[:, :, t:b, l:r])
        x = torch.cat([*parts, to_batch(self.grid, n)], dim=1)
        box = box + self.out(self.net(x)) * self.window
        mid = torch.cat([rgb[:, :, t:b, :l], box, rgb[:, :, t:b, r:]], dim=3)
        return torch.cat([rgb[:, :, :t], mid, rgb[:, :, b:]], dim=2)
