"""MDCF's second compressor: the latent motion auto-encoder (LMAE, seeds/001 §3.1 Eq. 4) and
phase two of the two-phase cascaded (TPC) training (§3.2, Eqs. 6-9).

  encoder   [f; m] [B, 3, S/4, S/4] -> mu, log sigma^2 [B, Z, h, h]   (h = S/4 / 2^down)
  sample    z = mu + sigma * eps                                      (Eq. 4)
  decoder   z [B, Z, h, h] -> [f; m] [B, 3, S/4, S/4]                  (the `lmae_decoder` program)

The LMAE works on normalized dynamics [f / flow_scale; 2 m - 1] (flows are ~0.05 in normalized
coordinates, visibility ~1: unnormalized, the MSE would only see the mask); `decode` returns
FDE units. Phase two (`CascadeTrainer`, mode "tpc") freezes the FDE and trains the LMAE on
dynamics the FDE computes online:
  L = lambda_MSE * (MSE([f; m]) + lambda_mouth * MSE([f; m] on the mouth box)) + lambda_IGC * IGC + lambda_KL * KL
(lambda_mouth is our addition: without it the LMAE dropped the mouth, a few small-valued cells of
[f; m]; see LMAEConfig).
IGC (Eq. 7) is the FDE's image loss on D(A(E(x_src), f^) * m^) through the *frozen* decoder,
so its gradient reaches the LMAE only. KL (Eq. 8) keeps sigma away from zero, so the decoder
learns to decode slightly perturbed latents (the low-pass behaviour the diffusion relies on).
Ablations (Table 5): "no-igc" sets lambda_IGC = 0; "e2e" (w/o TPC) trains FDE and LMAE together
from scratch on the image loss through the whole cascade (+ KL).

Shape legend: B batch, S image size, Z latent channels (4), h latent size.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeth.models.common.layers import ConvAct, ResBlock, upsample2x
from edgeth.models.common.losses import psnr
from edgeth.models.mdcf.config import FDEConfig, LMAEConfig
from edgeth.models.mdcf.fde import FDE, image_loss

MODES = ("tpc", "no-igc", "e2e")


class LMAEEncoder(nn.Module):
    """[f; m] [B, 3, S/4, S/4] (FDE units) -> (mu, log sigma^2), each [B, Z, h, h]."""

    def __init__(self, cfg: LMAEConfig, fde: FDEConfig):
        super().__init__()
        self.flow_scale = fde.flow_scale
        layers, cin = [], 3
        for c in cfg.channels:
            layers += [ConvAct(cin, c, stride=2), ResBlock(c, c)]
            cin = c
        self.net = nn.Sequential(*layers)
        self.to_stats = nn.Conv2d(cin, 2 * cfg.latent_channels, 3, padding=1)

    def normalize(self, dyn: torch.Tensor) -> torch.Tensor:
        return torch.cat([dyn[:, :2] / self.flow_scale, dyn[:, 2:3] * 2 - 1], dim=1)

    def forward(self, dyn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.to_stats(self.net(self.normalize(dyn))).chunk(2, dim=1)
        return mu, logvar.clamp(-20.0, 10.0)


class LMAEDecoder(nn.Module):
    """z [B, Z, h, h] -> [f; m] [B, 3, S/4, S/4] in FDE units (the `lmae_decoder` program)."""

    def __init__(self, cfg: LMAEConfig, fde: FDEConfig):
        super().__init__()
        self.flow_scale = fde.flow_scale
        chans = cfg.channels
        self.from_z = ConvAct(cfg.latent_channels, chans[-1])
        self.ups = nn.ModuleList(ConvAct(chans[i], chans[max(i - 1, 0)]) for i in reversed(range(len(chans))))
        self.res = ResBlock(chans[0], chans[0])
        self.out = nn.Conv2d(chans[0], 3, 3, padding=1)

    def normalized(self, z: torch.Tensor) -> torch.Tensor:
        h = self.from_z(z)
        for conv in self.ups:
            h = conv(upsample2x(h))
        return self.out(self.res(h))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        d = self.normalized(z)
        return torch.cat([d[:, :2] * self.flow_scale, (d[:, 2:3] + 1) * 0.5], dim=1)


class LMAE(nn.Module):
    def __init__(self, cfg: LMAEConfig, fde: FDEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = LMAEEncoder(cfg, fde)
        self.decoder = LMAEDecoder(cfg, fde)

    def normalize(self, dyn: torch.Tensor) -> torch.Tensor:
        return self.encoder.normalize(dyn)

    def encode(self, dyn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(dyn)

    def decode_normalized(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder.normalized(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) summed over latent elements, averaged over the batch (Eq. 8)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).flatten(1).sum(1).mean()


class CascadeTrainer(nn.Module):
    """FDE + LMAE for phase two ("tpc", "no-igc": FDE frozen) or the end-to-end ablation ("e2e")."""

    def __init__(self, fde: FDE, lmae: LMAE, mode: str = "tpc"):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} not in {MODES}")
        self.fde, self.lmae, self.mode = fde, lmae, mode
        c = lmae.cfg
        self.l_mse, self.l_igc, self.l_kl = c.lambda_mse, (0.0 if mode == "no-igc" else c.lambda_igc), c.lambda_kl
        self.l_mouth = c.lambda_mouth
        if mode != "e2e":
            self.fde.requires_grad_(False)  # phase two: the FDE is frozen (gradients stop at its weights)

    def trainable_parameters(self):
        return list(self.lmae.parameters()) + (self.fde.trainable_parameters() if self.mode == "e2e" else [])

    def losses(self, src: torch.Tensor, drv: torch.Tensor) -> dict[str, torch.Tensor]:
        e2e = self.mode == "e2e"
        with torch.set_grad_enabled(e2e and torch.is_grad_enabled()):
            dyn = self.fde.estimator(src, drv)
        mu, logvar = self.lmae.encode(dyn)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        dyn_n = self.lmae.decode_normalized(z)
        target = self.lmae.normalize(dyn).detach()
        mse = F.mse_loss(dyn_n, target)
        if self.l_mouth:
            t, b, l, r = self.fde.cfg.mouth_box_at(self.fde.cfg.dyn_size)
            mse = mse + self.l_mouth * F.mse_loss(dyn_n[:, :, t:b, l:r], target[:, :, t:b, l:r])
        dyn_hat = self.lmae.decode(z)
        pred = self.fde.decoder(src, self.fde.encoder(src), dyn_hat)
        igc = image_loss(pred, drv, src, self.fde.cfg, self.fde.vgg)
        kl = kl_divergence(mu, logvar)
        return {"mse": mse, "igc": igc, "kl": kl, "pred": pred, "sigma": torch.exp(0.5 * logvar)}

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        src, drv = batch["source"], batch["driving"]
        o = self.losses(src, drv)
        if self.mode == "e2e":  # w/o TPC: the image loss through the whole cascade (+ KL)
            loss = o["igc"] + self.l_kl * o["kl"]
        else:
            loss = self.l_mse * o["mse"] + self.l_igc * o["igc"] + self.l_kl * o["kl"]
        return {"loss": loss, "mse": o["mse"].detach(), "igc": o["igc"].detach(), "kl": o["kl"].detach(),
                "sigma": o["sigma"].mean().detach(), "psnr": psnr(o["pred"].detach(), drv)}
