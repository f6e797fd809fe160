"""Small fixture programs for tests and examples (not for deployment).

`fixture_programs()` returns two tiny Programs that exercise the constructs the real
model families use, at a size that exports in seconds:
  renderer  conv encoder + 4-D grid_sample warp + bilinear upsample + conv head
  denoiser  transformer block: LayerNorm + plain-softmax attention + GELU MLP + linear

Shape legend: B batch (1), C channels, H/W image size, T frames, D motion dim, F audio dim.
Imported only by tests and tools, never by `import edgeth`, so torch at the top is fine.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edgeth.program import Program, TensorSpec


class TinyRenderer(nn.Module):
    """image (B,3,H,W) + code (B,K) -> frame (B,3,H,W) through a flow-warped feature map."""

    def __init__(self, size: int = 32, width: int = 16, code_dim: int = 16):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU())
        self.code_proj = nn.Linear(code_dim, width)
        self.flow = nn.Conv2d(width, 2, 3, padding=1)
        self.head = nn.Conv2d(width, 3, 3, padding=1)
        h = size // 2
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, h), indexing="ij")
        self.register_buffer("base_grid", torch.stack([xs, ys], dim=-1)[None], persistent=False)  # (1,h,h,2)

    def forward(self, image: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        feat = self.enc(image)  # (B,C,H/2,W/2)
        feat = feat + self.code_proj(code)[:, :, None, None]
        flow = torch.tanh(self.flow(feat)).permute(0, 2, 3, 1)  # (B,H/2,W/2,2)
        warped = F.grid_sample(feat, self.base_grid + 0.1 * flow, mode="bilinear", padding_mode="zeros", align_corners=False)
        up = F.interpolate(warped, scale_factor=2.0, mode="bilinear", align_corners=False)
        return torch.sigmoid(self.head(up))


class Attention(nn.Module):
    """Multi-head self-attention with an explicit softmax (faster than SDPA on XNNPACK)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # (B,h,T,d/h)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // self.heads), dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyDenoiser(nn.Module):
    """x_t (B,T,D) + t (B,1) + audio (B,T,F) -> eps (B,T,D)."""

    def __init__(self, motion_dim: int = 12, audio_dim: int = 16, dim: int = 32, heads: int = 2):
        super().__init__()
        self.x_in = nn.Linear(motion_dim, dim)
        self.a_in = nn.Linear(audio_dim, dim)
        self.t_in = nn.Linear(1, dim)
        self.block = Block(dim, heads)
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, motion_dim)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        h = self.x_in(x_t) + self.a_in(audio) + self.t_in(t)[:, None, :]
        return self.out(self.norm(self.block(h)))


def renderer_program(seed: int = 0, size: int = 32) -> Program:
    torch.manual_seed(seed)
    m = TinyRenderer(size=size).eval()
    ex = (torch.rand(1, 3, size, size), torch.randn(1, 16))
    return Program(
        name="renderer",
        module=m,
        inputs=[TensorSpec("image", (1, 3, size, size), kind="image"), TensorSpec("code", (1, 16), kind="latent")],
        outputs=[TensorSpec("frame", (1, 3, size, size), kind="image")],
        example_inputs=ex,
    )


def denoiser_program(seed: int = 0, frames: int = 8) -> Program:
    torch.manual_seed(seed)
    m = TinyDenoiser().eval()
    ex = (torch.randn(1, frames, 12), torch.rand(1, 1), torch.randn(1, frames, 16))
    return Program(
        name="denoiser",
        module=m,
        inputs=[
            TensorSpec("x_t", (1, frames, 12), kind="motion"),
            TensorSpec("t", (1, 1), kind="scalar"),
            TensorSpec("audio", (1, frames, 16), kind="features"),
        ],
        outputs=[TensorSpec("eps", (1, frames, 12), kind="noise")],
        example_inputs=ex,
    )


def fixture_programs(seed: int = 0) -> list[Program]:
    """[renderer, denoiser]: deterministic for a given seed."""
    return [renderer_program(seed), denoiser_program(seed)]
