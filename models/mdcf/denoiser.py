"""MDCF's latent video diffusion (seeds/001 §3.3, Eq. 10): a VDM-style denoiser over a whole
sequence of LMAE latents at once. (The pose/blink generator that stands in for PBNet is
edgeth.models.common.pose_generator.ControlGenerator over POSE_KEYS.)

LatentDenoiser: (z_t [B, T, Z, h, h], t [B], audio [B, T, F], rho [B, T, P], context [B, Ce, h, h])
-> prediction [B, T, Z, h, h] (the schedule's prediction type). A "3-D U-Net" built factorized,
which is what VDM's (1, k, k) kernels are anyway, and what every target runs (XNNPACK has no
3-D convolution, Core ML's resample is 4-D only): per block
  spatial    2-D residual conv over frames folded into the batch [B T, C, h, h], FiLM-modulated
             per frame by (time + audio + pose/blink)
  temporal   1-D conv over frames [B h h, C, T] (residual)
  attention  self-attention over frames at each latent position [B h h, T, C] (plain softmax,
             models.common.attention), no positional table: the temporal convs give order, so
             one set of weights runs any T (global NAR over N frames, or windows of T)
Levels halve h with stride-2 convs and come back with bilinear x2 + conv, skips added. The
source condition E(x_src) enters as the FDE embedding average-pooled to h x h, projected and
concatenated to every frame's input.

Shape legend: B batch, T frames, Z latent channels, h latent size, C width, E cond width,
F audio features, P pose/blink dims (4), Ce FDE embedding channels.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeth.models.common.attention import SelfAttention
from edgeth.models.common.layers import MLP, ChannelNorm, FiLM, PlainLayerNorm, TimestepEmbedding, upsample2x
from edgeth.models.mdcf.config import POSE_KEYS, DiffusionConfig


class FactorizedBlock(nn.Module):
    """Spatial 2-D conv (per frame) + temporal 1-D conv + temporal attention, all residual."""

    def __init__(self, c: int, cond: int, heads: int):
        super().__init__()
        self.n1 = ChannelNorm(c)
        self.c1 = nn.Conv2d(c, c, 3, padding=1)
        self.film = FiLM(cond, c)
        self.c2 = nn.Conv2d(c, c, 3, padding=1)
        self.tconv = nn.Conv1d(c, c, 3, padding=1)
        self.n2 = PlainLayerNorm(c)
        self.attn = SelfAttention(c, heads)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, t: int) -> torch.Tensor:
        """x [B T, C, h, w], cond [B T, E] -> [B T, C, h, w]."""
        bt, c, h, w = x.shape
        b = bt // t
        x = x + self.c2(F.silu(self.film(self.c1(F.silu(self.n1(x))), cond)))
        seq = x.reshape(b, t, c, h, w).permute(0, 3, 4, 2, 1).reshape(b * h * w, c, t)  # frames last
        seq = seq + self.tconv(F.silu(seq))
        tok = seq.transpose(1, 2)  # [B h w, T, C]
        tok = tok + self.attn(self.n2(tok))
        return tok.reshape(b, h, w, t, c).permute(0, 3, 4, 1, 2).reshape(bt, c, h, w)


class LatentDenoiser(nn.Module):
    def __init__(self, cfg: DiffusionConfig, latent_channels: int, context_in: int, pose_dim: int = len(POSE_KEYS)):
        super().__init__()
        chans, e = cfg.channels, cfg.channels[0]
        self.time_embed = TimestepEmbedding(e)
        self.time = MLP(e, e, e)
        self.audio = nn.Linear(cfg.audio_dim, e)
        self.pose = MLP(pose_dim, e, e)
        self.context = nn.Conv2d(context_in, cfg.context_channels, 1)
        self.inp = nn.Conv2d(latent_channels + cfg.context_channels, chans[0], 3, padding=1)
        self.down_blocks = nn.ModuleList(nn.ModuleList(FactorizedBlock(c, e, cfg.heads) for _ in range(cfg.blocks))
                                         for c in chans)
        self.downs = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1)
                                   for i in range(len(chans) - 1))
        self.ups = nn.ModuleList(nn.Conv2d(chans[i + 1], chans[i], 3, padding=1) for i in range(len(chans) - 1))
        self.up_blocks = nn.ModuleList(nn.ModuleList(FactorizedBlock(chans[i], e, cfg.heads) for _ in range(cfg.blocks))
                                       for i in range(len(chans) - 1))
        self.norm_out = ChannelNorm(chans[0])
        self.out = nn.Conv2d(chans[0], latent_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, z: torch.Tensor, t: torch.Tensor, audio: torch.Tensor, rho: torch.Tensor,
                context: torch.Tensor) -> torch.Tensor:
        b, n, zc, h, w = z.shape
        # the timestep embedding stays FP32 (float_only); meet the rest of the network in its dtype
        # (a no-op in FP32; an FP16 export otherwise fed FP32 activations into half convolutions)
        temb = self.time_embed(t).to(self.inp.weight.dtype)
        cond = (self.time(temb)[:, None] + self.audio(audio) + self.pose(rho)).reshape(b * n, -1)
        ctx = self.context(context)
        ctx = ctx[:, None].expand(b, n, *ctx.shape[1:]).reshape(b * n, -1, h, w)
        x = self.inp(torch.cat([z.reshape(b * n, zc, h, w), ctx], dim=1))
        skips = []
        for i, blocks in enumerate(self.down_blocks):
            for blk in blocks:
                x = blk(x, cond, n)
            if i < len(self.downs):
                skips.append(x)
                x = self.downs[i](x)
        for i in reversed(range(len(self.ups))):
            x = self.ups[i](upsample2x(x)) + skips[i]
            for blk in self.up_blocks[i]:
                x = blk(x, cond, n)
        return self.out(F.silu(self.norm_out(x))).reshape(b, n, zc, h, w)
