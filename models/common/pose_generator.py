"""Audio-conditioned per-frame control generator: PBNet's role in MDCF (seeds/001 §3.3) and
the small pose / gaze / blink generator VQTalker uses at inference (seeds/002 §3.3).

ControlGenerator: per-frame features [B, T, F] -> controls [B, T, P], one channel per name in
`keys` (e.g. MDCF's scaled yaw, pitch, roll, blink; VQTalker's standardized yaw, pitch, roll,
gaze x/y, blink). A 5-tap input conv, residual dilated 1-D convs over time (dilations 1, 2, 4:
a receptive field of 19 frames), a 1x1 output conv; any T runs with one set of weights.
Trained by regression (`loss`, MSE) on a corpus's ground-truth controls. On the synthetic
corpus pose, gaze and blinks are independent of the speech, so it learns their mean; a
reference clip's controls can always be fed instead.

Shape legend: B batch, T frames, F input features, C width, P = len(keys) controls.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeth.models.common.layers import gelu


class ControlGenerator(nn.Module):
    """features [B, T, F] -> controls [B, T, P] (P = len(keys))."""

    def __init__(self, in_dim: int, keys: tuple[str, ...], channels: int, dilations: tuple[int, ...] = (1, 2, 4)):
        super().__init__()
        self.keys = tuple(keys)
        self.inp = nn.Conv1d(in_dim, channels, 5, padding=2)
        self.blocks = nn.ModuleList(nn.Conv1d(channels, channels, 3, padding=d, dilation=d) for d in dilations)
        self.out = nn.Conv1d(channels, len(self.keys), 1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        h = gelu(self.inp(feats.transpose(1, 2)))
        for blk in self.blocks:
            h = h + gelu(blk(h))
        return self.out(h).transpose(1, 2)

    def loss(self, feats: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """MSE of the predicted controls against the ground truth [B, T, P]."""
        return F.mse_loss(self(feats), target)
