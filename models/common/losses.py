"""Image reconstruction losses that need nothing downloaded: SSIM, a multi-scale L1 + SSIM
loss, and an optional VGG-19 perceptual loss that loads a *local* weights file.

No pretrained network can be fetched here, so the default perceptual term is multi-scale
L1 + (1 - SSIM) over an image pyramid. Given a local VGG-19 file (safetensors, or a torch
state dict loaded with weights_only=True, keys `features.N.weight/bias` as in torchvision),
`VGGPerceptual` adds the LIA/FOMM-style feature L1 on relu1_1..relu5_1.

Shape legend: images [B, 3, H, W] in [0, 1].
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeth.errors import InputError


def _gauss(size: int = 7, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Mean SSIM over batch and channels (images in [0, 1]); Gaussian window."""
    c = a.shape[1]
    k = _gauss(window).to(a).expand(c, 1, window, window)
    pad = window // 2
    mu_a = F.conv2d(a, k, padding=pad, groups=c)
    mu_b = F.conv2d(b, k, padding=pad, groups=c)
    saa = F.conv2d(a * a, k, padding=pad, groups=c) - mu_a**2
    sbb = F.conv2d(b * b, k, padding=pad, groups=c) - mu_b**2
    sab = F.conv2d(a * b, k, padding=pad, groups=c) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return s.mean()


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mse = F.mse_loss(a.clamp(0, 1), b.clamp(0, 1))
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def multiscale_l1_ssim(pred: torch.Tensor, target: torch.Tensor, scales: int = 3, ssim_weight: float = 0.5) -> torch.Tensor:
    """Sum over an image pyramid of L1 + ssim_weight * (1 - SSIM)."""
    loss = pred.new_zeros(())
    for i in range(scales):
        if i:
            pred, target = F.avg_pool2d(pred, 2), F.avg_pool2d(target, 2)
        loss = loss + F.l1_loss(pred, target)
        if min(pred.shape[-2:]) >= 8:
            loss = loss + ssim_weight * (1 - ssim(pred, target, window=min(7, pred.shape[-1] // 2 * 2 - 1)))
    return loss / scales


def mouth_box_loss(pred: torch.Tensor, target: torch.Tensor, box: tuple[int, int, int, int], kind: str = "mse") -> torch.Tensor:
    """The extra loss on the mouth box (pixels: top, bottom, left, right). "mse": an open mouth's
    dark interior is a few large errors, which an L1 (a per-pixel median) gives up on while it fits
    many small skin errors (IF-MDM's renderer drew no open mouth with "l1", issue 18)."""
    t, b, l, r = box
    p, q = pred[:, :, t:b, l:r], target[:, :, t:b, l:r]
    return F.mse_loss(p, q) if kind == "mse" else F.l1_loss(p, q)


def change_weighted_l1(pred: torch.Tensor, target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """L1 weighted by where target differs from source (blurred, mean 1 per sample): focuses an
    inter-frame reconstruction loss on what moved (mouth, eyes, head outline) instead of the
    static background that dominates a plain L1."""
    d = F.avg_pool2d((target - source).abs().mean(1, keepdim=True), 5, stride=1, padding=2)
    w = d / d.mean(dim=(2, 3), keepdim=True).clamp_min(1e-4)
    return ((pred - target).abs() * w).mean()


# torchvision's VGG-19 `features` layout: conv widths, "M" = max-pool.
_VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512)
_TAPS = (1, 6, 11, 20, 29)  # indices of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1


class VGGPerceptual(nn.Module):
    """Frozen VGG-19 feature L1 (weights from a local file only)."""

    def __init__(self, weights: str | Path):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in _VGG19:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
                cin = v
        self.features = nn.Sequential(*layers[: _TAPS[-1] + 1])
        self.load(weights)
        self.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def load(self, weights: str | Path) -> None:
        p = Path(weights)
        if not p.is_file():
            raise InputError(f"VGG weights file {p} not found", "pass a local VGG-19 state dict (.safetensors or .pth)")
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(p))
        else:
            sd = torch.load(str(p), map_location="cpu", weights_only=True)
        sd = {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")}
        own = self.features.state_dict()
        missing = [k for k in own if k not in sd]
        if missing:
            raise InputError(f"VGG weights file {p} lacks {missing[:3]}...", "use torchvision's vgg19 state dict layout")
        self.features.load_state_dict({k: sd[k] for k in own})

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = (torch.cat([pred, target]) - self.mean) / self.std
        loss = pred.new_zeros(())
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _TAPS:
                a, b = x.chunk(2)
                loss = loss + F.l1_loss(a, b.detach())
        return loss / len(_TAPS)
