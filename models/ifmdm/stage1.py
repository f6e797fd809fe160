"""IF-MDM stage 1: visual encoder + warping generator (seeds/004 §3.2, Fig. 4; after LIA).

Encoder E_v: image -> multi-level appearance features {a^l} (the image itself and the maps at
S/2 .. S/2^app_levels) and a motion code m. The motion code comes from the linear motion
decomposition layer: coefficients over a learned direction bank, squashed with tanh, so
every entry lies in [-1, 1]. Applied to the identity image it gives the motion hint m'.
Its last `mouth_code_dim` coefficients come from a small conv head on a fixed crop of the
aligned portrait around the mouth (our addition): with one global head the code learned head
pose but collapsed on the mouth (stage-1 re-render lip sync r = 0.03 on held-out identities
after 1500 steps, vs 0.61 with the crop head and 0.95 with ground-truth motion fed in), as
the mouth is a few percent of the pixels and needs synthesis, not just warping.

Generator G (the renderer): style = MLP((m - m') @ directions) — the motion relative to the
source's own code m' (its appearance already shows the source pose; LIA likewise adds the
driving motion to the source latent). A relative code carries information from the first
step, where absolute codes collapsed to a constant in our CPU runs. From the coarsest
appearance map upwards, each level predicts a flow (coarse to fine, residual) and an
occlusion mask, warps that level's appearance features with a 4-D grid_sample, and fuses
them with the decoder features (FiLM-modulated by the style). Extra residual conv blocks
and a final blend of the warped image with a generated RGB image let it synthesize what
warping cannot (teeth, occluded parts). The blend did not learn to draw an open mouth: the
closed mouth of a portrait has no dark pixels to warp, and the gated generated image collapsed
shut (even with the ground-truth opening fed in as the code, 600 steps drew none). So a mouth
painter (our addition, `mouth_patch_channels`) adds an ungated, zero-initialised residual on
the static mouth box at full resolution, read from the decoder's last features, the box's
pixels, the mouth code (absolute and relative to the source) and a coordinate grid, faded to
zero at the box's edge so no seam shows.

Training (inter-frame reconstruction): source and driving frames of the same clip; loss =
multi-scale L1 + SSIM, an L1 weighted by where the two frames differ (mouth, eyes, outline),
an extra loss on the mouth box (L1: re-render lip sync 0.61 -> 0.80; squared error in the
presets, `mouth_loss`: the open mouth's dark interior is a few large errors, which an L1
(a per-pixel median) gives up on while it fits many small skin errors), a small
penalty keeping the pre-tanh coefficients out of saturation, and the VGG-19 feature L1 when a
local weights file is given (nothing pretrained can be downloaded).

Shape legend: B batch, N frames rendered at once, S image size, D motion dim (20),
L direction-bank width, a^0 = image [B, 3, S, S] in [-1, 1], a^l [B, C_l, S/2^l, S/2^l].
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeth.models.common.layers import MLP, ConvAct, DownBlock, FiLM, ResBlock, to_batch, upsample2x
from edgeth.models.common.losses import VGGPerceptual, change_weighted_l1, mouth_box_loss, multiscale_l1_ssim, psnr
from edgeth.models.common.mouth import MouthPatch
from edgeth.models.common.warp import FlowWarp
from edgeth.models.ifmdm.config import Stage1Config


class MouthEncoder(nn.Module):
    """image [B, 3, S, S] in [-1, 1] -> mouth coefficients [B, K] from the static mouth crop.

    A stride-1 stem, then stride-2 stages until the crop is at most 8 wide, flatten, MLP. The
    crop is a constant slice, so it lowers on every target.
    """

    def __init__(self, cfg: Stage1Config):
        super().__init__()
        self.box = cfg.mouth_pixels
        t, b, l, r = self.box
        h, w = b - t, r - l
        chans = list(cfg.mouth_channels)
        layers = [ConvAct(3, chans[0])]
        c, n = chans[0], 0
        while w > 8 or n < len(chans) - 1:
            co = chans[min(n + 1, len(chans) - 1)]
            layers.append(ConvAct(c, co, stride=2))
            c, h, w, n = co, (h - 1) // 2 + 1, (w - 1) // 2 + 1, n + 1
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Sequential(nn.Linear(c * h * w, cfg.latent_dim), nn.LeakyReLU(0.2),
                                  nn.Linear(cfg.latent_dim, cfg.mouth_code_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b, l, r = self.box
        return self.head(self.net(x[:, :, t:b, l:r]))


class VisualEncoder(nn.Module):
    """image [B, 3, S, S] in [0, 1] -> (appearance features fine-to-coarse, motion [B, D])."""

    def __init__(self, cfg: Stage1Config):
        super().__init__()
        self.cfg = cfg
        chans = (3, *cfg.enc_channels)
        self.stages = nn.ModuleList(DownBlock(chans[i], chans[i + 1]) for i in range(len(cfg.enc_channels)))
        flat = cfg.enc_channels[-1] * cfg.bottom_size**2
        self.to_latent = nn.Sequential(nn.Flatten(), nn.Linear(flat, cfg.latent_dim), nn.LeakyReLU(0.2))
        # linear motion decomposition: latent -> coefficients over the direction bank
        self.to_coeff = nn.Sequential(nn.Linear(cfg.latent_dim, cfg.latent_dim), nn.LeakyReLU(0.2),
                                      nn.Linear(cfg.latent_dim, cfg.motion_dim - cfg.mouth_code_dim))
        self.mouth = MouthEncoder(cfg) if cfg.mouth_code_dim else None

    def features(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(appearance features fine-to-coarse, pre-tanh motion coefficients [B, D])."""
        x = image * 2 - 1
        feats = [x]
        h = x
        for st in self.stages:
            h = st(h)
            feats.append(h)
        coeff = self.to_coeff(self.to_latent(h))
        if self.mouth is not None:
            coeff = torch.cat([coeff, self.mouth(x)], dim=1)
        return feats[: self.cfg.app_levels + 1], coeff

    def forward(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        feats, coeff = self.features(image)
        return feats, torch.tanh(coeff)

    def motion(self, image: torch.Tensor) -> torch.Tensor:
        return self.forward(image)[1]


class WarpLevel(nn.Module):
    """One decoder level: refine features, predict flow + mask, warp appearance, fuse."""

    def __init__(self, cin: int, c: int, ca: int, size: int, style_dim: int, first: bool, n_res: int,
                 flow_scale: float, film_init: float = 0.0):
        super().__init__()
        self.first, self.flow_scale = first, flow_scale
        self.conv1 = nn.Conv2d(cin, c, 3, padding=1)  # at the previous (half) resolution unless first
        self.film = FiLM(style_dim, c, init_std=film_init)
        self.head = nn.Conv2d(c, 3, 3, padding=1)  # flow (2) + occlusion mask logit (1)
        nn.init.zeros_(self.head.weight)
        with torch.no_grad():
            self.head.bias.copy_(torch.tensor([0.0, 0.0, 3.0]))
        self.warp = FlowWarp(size)
        self.conv2 = ConvAct(c + ca, c)
        self.film2 = FiLM(style_dim, c, init_std=film_init)
        self.res = nn.Sequential(*[ResBlock(c, c) for _ in range(n_res)])

    def forward(self, h, flow, app, style):
        h = self.conv1(h)
        if not self.first:
            h, flow = upsample2x(h), upsample2x(flow)
        h = F.leaky_relu(self.film(h, style), 0.2)
        d = self.head(h)
        flow = d[:, :2] * self.flow_scale + (flow if flow is not None else 0.0)
        sampled = self.warp(to_batch(app, h.shape[0]), flow)
        h = self.res(self.film2(self.conv2(torch.cat([h, sampled * torch.sigmoid(d[:, 2:3])], dim=1)), style))
        return h, flow, sampled


class Renderer(nn.Module):
    """Generator G: (appearance features of the source, m' [B|1, D], m [N, D]) -> RGB [N, 3, S, S] in [0, 1]."""

    MOUTH_INPUTS = 2  # the mouth painter reads the mouth code absolute and relative to the source

    def __init__(self, cfg: Stage1Config):
        super().__init__()
        self.cfg = cfg
        d, l = cfg.motion_dim, cfg.latent_dim
        self.directions = nn.Parameter(torch.randn(d, l) * cfg.direction_init)  # the learned direction bank
        self.style = MLP(l, cfg.style_dim, cfg.style_dim)
        shapes = cfg.app_shapes[::-1]  # coarse to fine
        # spatial style map at the coarsest level: lets the code act where things move (mouth, eyes)
        self.map_shape = (cfg.style_map_channels, shapes[0][1], shapes[0][2])
        self.style_map = nn.Linear(cfg.style_dim, cfg.style_map_channels * shapes[0][1] * shapes[0][2])
        levels = []
        cin = shapes[0][0] + cfg.style_map_channels
        for i, ((ca, s, _), c) in enumerate(zip(shapes, cfg.dec_channels)):
            levels.append(WarpLevel(cin, c, ca, s, cfg.style_dim, i == 0, cfg.refine_blocks[i], cfg.flow_scale,
                                    cfg.film_init / cfg.style_dim**0.5))
            cin = c
        self.levels = nn.ModuleList(levels)
        self.to_rgb = nn.Conv2d(cin, 4, 3, padding=1)  # generated RGB (3) + blend logit (1)
        nn.init.zeros_(self.to_rgb.weight)
        with torch.no_grad():
            self.to_rgb.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 2.0]))
        self.out_warp = FlowWarp(cfg.image_size)
        # the finest level warps the source image itself at full size with the final flow: its
        # sample is out_warp's, bit for bit, so it is reused (one full-size grid_sample less: on
        # ExecuTorch grid_sampler_2d is a single-threaded portable kernel, 32 % of the mobile
        # renderer's time before this)
        self.reuse_sample = len(levels) == len(shapes) and shapes[-1][0] == 3 and shapes[-1][1] == cfg.image_size
        k = cfg.mouth_code_dim
        self.mouth_patch = (MouthPatch(cfg.mouth_pixels, cfg.mouth_patch_channels, cin, code_dim=self.MOUTH_INPUTS * k)
                            if (k and cfg.mouth_patch_channels) else None)

    def forward(self, feats: list[torch.Tensor], motion_src: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        n = motion.shape[0]
        # relative motion: the source appearance already shows the source pose
        rel = motion - to_batch(motion_src, n)
        k = self.cfg.mouth_code_dim
        mouth = torch.cat([motion[:, -k:], rel[:, -k:]], dim=1) if self.mouth_patch is not None else None
        return self.decode(feats, self.style(rel @ self.directions), mouth)

    def decode(self, feats: list[torch.Tensor], style: torch.Tensor, mouth: torch.Tensor | None = None) -> torch.Tensor:
        """Appearance features of the source + style [N, style_dim] -> RGB [N, 3, S, S] in [0, 1]
        (the warping decoder; VQTalker's renderer drives it with its own style)."""
        n = style.shape[0]
        apps = feats[::-1]
        h = torch.cat([to_batch(apps[0], n), self.style_map(style).reshape(n, *self.map_shape)], dim=1)
        flow = None
        for level, app in zip(self.levels, apps):
            h, flow, sampled = level(h, flow, app, style)
        out = self.to_rgb(h)
        warped = sampled if self.reuse_sample else self.out_warp(to_batch(feats[0], n), flow)
        blend = torch.sigmoid(out[:, 3:4])
        rgb = blend * warped + (1 - blend) * torch.tanh(out[:, :3])
        if mouth is not None and self.mouth_patch is not None:
            rgb = self.mouth_patch(h, rgb, mouth)
        return (rgb.clamp(-1, 1) + 1) * 0.5


class Stage1Model(nn.Module):
    """Encoder + generator trained jointly by inter-frame reconstruction."""

    def __init__(self, cfg: Stage1Config):
        super().__init__()
        self.cfg = cfg
        self.encoder = VisualEncoder(cfg)
        self.renderer = Renderer(cfg)
        self.vgg = VGGPerceptual(cfg.vgg_weights) if (cfg.vgg_weight > 0 and cfg.vgg_weights) else None

    def trainable_parameters(self):
        return [p for n, p in self.named_parameters() if not n.startswith("vgg.")]

    def reconstruct(self, source: torch.Tensor, driving: torch.Tensor, with_coeff: bool = False):
        """source, driving [B, 3, S, S] in [0, 1] -> driving reconstructed from source appearance."""
        b = source.shape[0]
        feats, coeff = self.encoder.features(torch.cat([source, driving]))  # one encoder pass for both
        c_src, c_drv = coeff[:b], coeff[b:]
        pred = self.renderer([f[:b] for f in feats], torch.tanh(c_src), torch.tanh(c_drv))  # expand() is a no-op at B
        return (pred, torch.cat([c_src, c_drv])) if with_coeff else pred

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        src, drv = batch["source"], batch["driving"]
        pred, coeff = self.reconstruct(src, drv, with_coeff=True)
        rec = multiscale_l1_ssim(pred, drv, ssim_weight=self.cfg.ssim_weight)
        focus = change_weighted_l1(pred, drv, src)
        code = coeff.pow(2).mean()
        mouth = mouth_box_loss(pred, drv, self.cfg.mouth_pixels, self.cfg.mouth_loss)
        loss = rec + self.cfg.change_weight * focus + self.cfg.mouth_weight * mouth + self.cfg.code_weight * code
        out = {"rec": rec.detach(), "focus": focus.detach(), "mouth": mouth.detach(), "code": code.detach(),
               "l1": F.l1_loss(pred, drv).detach(), "psnr": psnr(pred.detach(), drv)}
        if self.vgg is not None:
            perc = self.vgg(pred, drv)
            loss = loss + self.cfg.vgg_weight * perc
            out["vgg"] = perc.detach()
        out["loss"] = loss
        return out
