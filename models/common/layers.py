"""Shared export-friendly layers: LayerNorm with explicit mean/var, FiLM modulation, conv
blocks, timestep embeddings, MLPs.

Rules every block here follows (see /work/shared/notes/export-stack-facts.md): static
shapes, no data-dependent control flow, LayerNorm written as mean/var over the last dim (the
ExecuTorch portable FP16 LayerNorm kernel is wrong at widths >= 256 and XNNPACK does not
delegate native_layer_norm), activations that every backend lowers (SiLU, GELU-tanh, ReLU).

Shape legend: B batch, C channels, H/W spatial, T sequence length, E embedding width.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def to_batch(x: torch.Tensor, n) -> torch.Tensor:
    """x [1, ...] broadcast to batch n: x itself when its batch already is n (an exported
    `expand` to the same shape still costs a full copy on ExecuTorch's portable kernel), else
    x.expand(n, ...) (a view in PyTorch; also the path for a symbolic n)."""
    if isinstance(n, int) and x.shape[0] == n:
        return x
    return x.expand(n, *x.shape[1:])


class PlainLayerNorm(nn.Module):
    """LayerNorm over the last dim written with explicit mean/var (delegates everywhere)."""

    def __init__(self, dim: int, eps: float = 1e-6, affine: bool = True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if affine else None
        self.bias = nn.Parameter(torch.zeros(dim)) if affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(dim=-1, keepdim=True)
        xc = x - mu
        var = (xc * xc).mean(dim=-1, keepdim=True)
        y = xc * torch.rsqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight + self.bias
        return y


class ChannelNorm(nn.Module):
    """Per-pixel LayerNorm over channels of a [B, C, H, W] map (4-D means, export-safe)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(dim=1, keepdim=True)
        xc = x - mu
        var = (xc * xc).mean(dim=1, keepdim=True)
        return xc * torch.rsqrt(var + self.eps) * self.weight + self.bias


class FiLM(nn.Module):
    """Feature-wise modulation h * (1 + scale(s)) + shift(s) of a [B, C, H, W] map by a style
    vector s [B, E]. `init_std` 0 starts it as the identity; a small non-zero std lets the style
    steer the features (and receive gradients) from the first step. Cheaper and far more
    exportable than StyleGAN weight modulation (no per-sample convolution weights)."""

    def __init__(self, style_dim: int, channels: int, init_std: float = 0.0):
        super().__init__()
        self.proj = nn.Linear(style_dim, 2 * channels)
        nn.init.normal_(self.proj.weight, std=init_std) if init_std > 0 else nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        scale, shift = self.proj(s)[:, :, None, None].chunk(2, dim=1)
        return h * (1 + scale) + shift


class ConvAct(nn.Sequential):
    """3x3 (or k x k) conv + LeakyReLU(0.2); stride 2 halves H and W."""

    def __init__(self, cin: int, cout: int, stride: int = 1, k: int = 3):
        super().__init__(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2), nn.LeakyReLU(0.2))


class ResBlock(nn.Module):
    """Two 3x3 convs with a residual (1x1 projection when widths differ)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c2(F.leaky_relu(self.c1(F.leaky_relu(x, 0.2)), 0.2))
        return self.skip(x) + h


class DownBlock(nn.Module):
    """Stride-2 conv then a residual block: [B, cin, H, W] -> [B, cout, H/2, W/2]."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.down = ConvAct(cin, cout, stride=2)
        self.res = ResBlock(cout, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res(self.down(x))


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 (align_corners=False lowers on ONNX, ExecuTorch, Core ML, TensorRT)."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def _timestep_freqs(dim: int, max_period: float = 10000.0) -> torch.Tensor:
    half = dim // 2
    return torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (float) timesteps t [B] -> [B, dim]."""
    return TimestepEmbedding(dim, max_period).to(t.device)(t)


class TimestepEmbedding(nn.Module):
    """`timestep_embedding` as a module for deployable programs: the frequencies are a constant
    buffer (no arange in the graph) and the module has a path that programs list in
    `float_only`. It must stay float: INT8 of t in [0, 1000) steps by ~8 timesteps, and the
    high-frequency sin/cos of that are noise (ONNX QDQ: denoiser cosine 0.71)."""

    def __init__(self, dim: int, max_period: float = 10000.0):
        super().__init__()
        self.dim = dim
        self.register_buffer("freqs", _timestep_freqs(dim, max_period), persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t.float()[:, None] * self.freqs[None, :]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if self.dim % 2:
            emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
        return emb


class MLP(nn.Sequential):
    """Linear -> SiLU -> Linear."""

    def __init__(self, din: int, dhidden: int, dout: int):
        super().__init__(nn.Linear(din, dhidden), nn.SiLU(), nn.Linear(dhidden, dout))


def gelu(x: torch.Tensor) -> torch.Tensor:
    """Exact (erf) GELU, the form every target lowers faithfully. Not approximate="tanh":
    ExecuTorch 1.5's XNNPACK delegate serializes it as exact GELU (up to 4.7e-4 off, fixed
    upstream in pytorch/executorch#22851), which breaks FP32 parity; `edgeth export`'s
    ExecuTorch preflight rejects it."""
    return F.gelu(x)
