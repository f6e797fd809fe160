"""VQTalker facial motion tokenizer (seeds/002 §3.2, Fig. 2a).

An image encoder (IF-MDM stage 1's VisualEncoder: stride-2 stages + a mouth-crop head) gives
fine-grained skip features, and its pre-tanh head gives the motion feature f of a frame; a
small head on the coarsest skip map gives the global face feature f_g. The motion difference
f_{s->t} = f_t - f_s between source and target is quantized by GRFSQ (models/common/fsq.py);
the renderer rebuilds the target from the quantized motion + f_g with the source's skip
features and a 4-D grid_sample warp at every decoder stage (IF-MDM's warping decoder,
`Renderer.decode`, driven by a style computed from [quantized motion, f_g]).

Training is IF-MDM stage 1's inter-frame reconstruction (its training_step and losses are
inherited: multi-scale L1 + SSIM, change-weighted L1, mouth-box L1, code penalty) plus the
quantizer's auxiliary loss (VQ variants) and the codebook utilization as a logged metric.

Shape legend: B batch, N frames, S image size, Dm = G*d motion dims, Cg global dims,
skips a^0..a^K as in IF-MDM (a^0 = image in [-1, 1]).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from edgeth.models.common.fsq import CodeLookup, GroupedResidualQuantizer, utilization
from edgeth.models.ifmdm.stage1 import Renderer, Stage1Model
from edgeth.models.vqtalker.config import VQTalkerConfig


class CodeRenderer(Renderer):
    """(skips, f_g [1|N, Cg], quantized motion [N, Dm]) -> RGB [N, 3, S, S] in [0, 1]."""

    def __init__(self, cfg: VQTalkerConfig):
        super().__init__(cfg.stage1())
        del self.directions  # the direction bank is IF-MDM's; here the style reads the code and f_g
        self.to_latent = nn.Sequential(nn.Linear(cfg.motion_dim + cfg.global_dim, cfg.latent_dim), nn.LeakyReLU(0.2))

    MOUTH_INPUTS = 1  # the code is already relative to the source (f_t - f_s)

    def forward(self, feats: list[torch.Tensor], f_g: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        n = code.shape[0]
        style = self.style(self.to_latent(torch.cat([code, f_g.expand(n, -1)], dim=1)))
        mouth = code[:, -self.cfg.mouth_code_dim:] if self.mouth_patch is not None else None
        return self.decode(feats, style, mouth)


class GlobalHead(nn.Module):
    """Coarsest skip map [B, C, h, w] -> f_g [B, Cg] (spatial mean, MLP)."""

    def __init__(self, channels: int, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(channels, dim), nn.LeakyReLU(0.2), nn.Linear(dim, dim))

    def forward(self, coarse: torch.Tensor) -> torch.Tensor:
        return self.net(coarse.mean(dim=(2, 3)))


class MotionTokenizer(Stage1Model):
    """Encoder + GRFSQ + renderer, trained by inter-frame reconstruction (Stage1Model's step)."""

    def __init__(self, cfg: VQTalkerConfig):
        super().__init__(cfg.stage1())
        self.vq_cfg = cfg
        self.renderer = CodeRenderer(cfg)
        self.global_head = GlobalHead(self.cfg.app_shapes[-1][0], cfg.global_dim)
        self.quantizer = GroupedResidualQuantizer(cfg.quantizer)
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def encode(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """image [B, 3, S, S] in [0, 1] -> (skips, f_g [B, Cg], motion feature f [B, Dm])."""
        feats, f = self.encoder.features(image)
        return feats, self.global_head(feats[-1]), f

    def motion(self, image: torch.Tensor) -> torch.Tensor:
        return self.encoder.features(image)[1]

    def reconstruct(self, source: torch.Tensor, driving: torch.Tensor, with_coeff: bool = False):
        """Driving frames rebuilt from the source's appearance and the quantized f_t - f_s."""
        b = source.shape[0]
        feats, f = self.encoder.features(torch.cat([source, driving]))
        skips = [x[:b] for x in feats]
        q, idx, aux = self.quantizer(f[b:] - f[:b])
        self._last = (idx, aux)
        pred = self.renderer(skips, self.global_head(skips[-1]), q)
        return (pred, f) if with_coeff else pred

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = super().training_step(batch)
        idx, aux = self._last
        out["loss"] = out["loss"] + aux
        out["vq_aux"] = aux.detach()
        out["utilization"] = utilization(idx.detach(), self.vq_cfg.quantizer.codes)
        return out

    @torch.no_grad()
    def tokenize(self, source: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Indices [N, G, R] of frames [N, 3, S, S] relative to source [1, 3, S, S]."""
        return self.quantizer.indices(self.motion(frames) - self.motion(source))

    @torch.no_grad()
    def render(self, source: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Frames [N, 3, S, S] from indices [N, G, R] on the source portrait's appearance."""
        feats, f_g, _ = self.encode(source)
        return self.renderer(feats, f_g, self.quantizer.decode(indices))


class LookupRenderer(nn.Module):
    """The deployable renderer: (skips..., f_g, indices int32 [N, G, R]) -> frames [N, 3, S, S].
    `lookup` (one-hot decoding of the indices) must stay float."""

    def __init__(self, tok: MotionTokenizer):
        super().__init__()
        self.levels = tok.cfg.app_levels + 1
        self.lookup = CodeLookup(tok.quantizer)
        self.renderer = tok.renderer

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        feats, f_g, idx = list(xs[: self.levels]), xs[self.levels], xs[self.levels + 1]
        return self.renderer(feats, f_g, self.lookup(idx))
