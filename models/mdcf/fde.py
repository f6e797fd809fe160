"""MDCF's first compressor: the flow-aware dynamics extractor (FDE, seeds/001 §3.1, Eq. 5).

  E   source encoder       x_src [B, 3, S, S] in [0, 1] -> embedding e [B, Ce, S/4, S/4]
  ME  motion estimator     (x_src, x_dri) -> first-stage dynamics [f; m] [B, 3, S/4, S/4]:
                           flow f (2 channels, normalized coordinates, tanh-bounded) and
                           occlusion m (1 channel, sigmoid, 1 = visible)
  A   warp                 e warped by f (4-D grid_sample, models.common.warp) and masked by m
  D   image decoder        rebuilds the driving frame from A(e, f) * m and repairs occluded
                           regions: a generated RGB image blended with the source image
                           warped by f upsampled to S (the blend is learned per pixel); the
                           shared mouth painter (models.common.mouth) then adds a residual on
                           the mouth box from D's last features and [f; m] upsampled to S

Phase one (Eq. 5) trains E, ME and D by inter-frame reconstruction. The paper's loss is a VGG
perceptual loss; nothing pretrained can be downloaded here, so it is multi-scale L1 + SSIM
plus the change-weighted L1 (models.common.losses), and VGG-19 when a local weights file is
configured (as IF-MDM does).

Shape legend: B batch, S image size, Ce embedding channels, [f; m] dynamics at S/4.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeth.models.common.layers import ConvAct, DownBlock, ResBlock, to_batch, upsample2x
from edgeth.models.common.losses import VGGPerceptual, change_weighted_l1, mouth_box_loss, multiscale_l1_ssim, psnr
from edgeth.models.common.mouth import MouthPatch
from edgeth.models.common.warp import FlowWarp
from edgeth.models.mdcf.config import FDEConfig


class SourceEncoder(nn.Module):
    """E: image [B, 3, S, S] in [0, 1] -> embedding [B, Ce, S/4, S/4]."""

    def __init__(self, cfg: FDEConfig):
        super().__init__()
        c0, c1 = cfg.enc_channels
        self.net = nn.Sequential(DownBlock(3, c0), DownBlock(c0, c1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image * 2 - 1)


class MotionEstimator(nn.Module):
    """(source, driving) [B, 3, S, S] -> [f; m] [B, 3, S/4, S/4] (flow x, flow y, visibility)."""

    def __init__(self, cfg: FDEConfig):
        super().__init__()
        c = cfg.est_channels
        self.flow_scale = cfg.flow_scale
        self.down = nn.ModuleList([DownBlock(6, c[0]), DownBlock(c[0], c[1]), DownBlock(c[1], c[2])])  # S/2, S/4, S/8
        self.fuse = ConvAct(c[2] + c[1], c[1])
        self.head = nn.Conv2d(c[1], 3, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        with torch.no_grad():
            self.head.bias.copy_(torch.tensor([0.0, 0.0, 3.0]))  # start: no motion, all visible

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        h = torch.cat([source, driving], dim=1) * 2 - 1
        h2 = self.down[0](h)
        h4 = self.down[1](h2)
        h8 = self.down[2](h4)
        d = self.head(self.fuse(torch.cat([upsample2x(h8), h4], dim=1)))
        return torch.cat([torch.tanh(d[:, :2]) * self.flow_scale, torch.sigmoid(d[:, 2:3])], dim=1)


class ImageDecoder(nn.Module):
    """A + D: (source image, embedding, [f; m]) -> frame [B, 3, S, S] in [0, 1]."""

    def __init__(self, cfg: FDEConfig):
        super().__init__()
        ce, (c0, c1) = cfg.enc_channels[-1], cfg.dec_channels
        self.warp_emb = FlowWarp(cfg.dyn_size)
        self.warp_img = FlowWarp(cfg.image_size)
        self.res = nn.Sequential(*[ResBlock(ce + 1, ce + 1) for _ in range(cfg.dec_res_blocks)])
        self.up1 = ConvAct(ce + 1, c0)
        self.up2 = ConvAct(c0, c1)
        self.to_rgb = nn.Conv2d(c1, 4, 3, padding=1)  # generated RGB (3) + blend logit (1)
        nn.init.zeros_(self.to_rgb.weight)
        with torch.no_grad():
            self.to_rgb.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 2.0]))
        # the painter's code: [f; m] on the mouth box at S/4, flattened (a linear read-out of it
        # predicts the held-out opening with r 0.86; per pixel, the painter's 7-pixel receptive
        # field could not gather it and drew no open mouth: amplitude 0.10 at 1500 steps)
        self.dyn_box = cfg.mouth_box_at(cfg.dyn_size)
        t, b, l, r = self.dyn_box
        self.mouth_patch = (MouthPatch(cfg.mouth_pixels, cfg.mouth_patch_channels, c1, code_dim=3 * (b - t) * (r - l),
                                       extra_dim=3) if cfg.mouth_patch_channels else None)

    def forward(self, image: torch.Tensor, emb: torch.Tensor, dyn: torch.Tensor) -> torch.Tensor:
        n = dyn.shape[0]
        flow, vis = dyn[:, :2], dyn[:, 2:3].clamp(0.0, 1.0)  # LMAE-decoded m may leave [0, 1]
        warped = self.warp_emb(to_batch(emb, n), flow) * vis
        h = self.res(torch.cat([warped, vis], dim=1))
        h = self.up2(upsample2x(self.up1(upsample2x(h))))
        out = self.to_rgb(h)
        # the painter reads [f; m] (clamped m) at S/4 and at full size: one resize of 3 channels, not 2
        fm = flow if self.mouth_patch is None else torch.cat([flow, vis], dim=1)
        dyn_full = F.interpolate(fm, scale_factor=4.0, mode="bilinear", align_corners=False)
        src = self.warp_img(to_batch(image, n) * 2 - 1, dyn_full if self.mouth_patch is None else dyn_full[:, :2])
        blend = torch.sigmoid(out[:, 3:4])
        rgb = blend * src + (1 - blend) * torch.tanh(out[:, :3])
        if self.mouth_patch is not None:
            t, b, l, r = self.dyn_box
            rgb = self.mouth_patch(h, rgb, fm[:, :, t:b, l:r].reshape(n, -1), dyn_full)
        return (rgb.clamp(-1, 1) + 1) * 0.5


def image_loss(pred: torch.Tensor, target: torch.Tensor, source: torch.Tensor, cfg: FDEConfig,
               vgg: nn.Module | None = None) -> torch.Tensor:
    """The image-level loss of Eq. 5 and Eq. 7 (IGC): multi-scale L1 + SSIM + change-weighted L1
    (+ the mouth-box loss, + VGG)."""
    loss = multiscale_l1_ssim(pred, target, ssim_weight=cfg.ssim_weight) + change_weighted_l1(pred, target, source)
    if cfg.mouth_weight:
        loss = loss + cfg.mouth_weight * mouth_box_loss(pred, target, cfg.mouth_pixels, cfg.mouth_loss)
    if vgg is not None:
        loss = loss + cfg.vgg_weight * vgg(pred, target)
    return loss


class FDE(nn.Module):
    """E + ME + D. `training_step` is phase one of TPC training (Eq. 5)."""

    def __init__(self, cfg: FDEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = SourceEncoder(cfg)
        self.estimator = MotionEstimator(cfg)
        self.decoder = ImageDecoder(cfg)
        self.vgg = VGGPerceptual(cfg.vgg_weights) if (cfg.vgg_weight > 0 and cfg.vgg_weights) else None

    def trainable_parameters(self):
        return [p for n, p in self.named_parameters() if not n.startswith("vgg.")]

    def reconstruct(self, source: torch.Tensor, driving: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(driving rebuilt from source, its dynamics [f; m])."""
        dyn = self.estimator(source, driving)
        return self.decoder(source, self.encoder(source), dyn), dyn

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        src, drv = batch["source"], batch["driving"]
        pred, dyn = self.reconstruct(src, drv)
        loss = image_loss(pred, drv, src, self.cfg, self.vgg)
        return {"loss": loss, "l1": F.l1_loss(pred, drv).detach(), "psnr": psnr(pred.detach(), drv),
                "mouth": mouth_box_loss(pred.detach(), drv, self.cfg.mouth_pixels, "mse"),
                "visible": dyn[:, 2].mean().detach()}
