"""Phase three: the latent video diffusion model's training module (seeds/001 §3.3).

The frozen MDCF (FDE + LMAE) turns each training window into labels online (the paper
"extract[s] its latent states online ... by the frozen MDCF"): the FDE's dynamics of every
frame relative to a source frame of the same clip, encoded by the LMAE to mu (the Gaussian's
mean). The diffusion variable is that latent relative to the source's *origin* latent (the
LMAE code of the FDE dynamics from the source to itself: no motion), divided by a per-channel
`latent_scale` (the RMS of mu - origin over training pairs, measured once before training).
Without the origin, the latent's variance is almost all identity (the dynamics' constant
part differs per portrait): measured on the tiny fixture, the temporal std of the standardized
latent within a clip was 0.5-1% of its overall std, and the denoiser learned a still video. The DDPM objective
(models.common.diffusion.TorchSchedule, the schedule the host DDIM sampler uses) trains the
denoiser; the audio encoder (IF-MDM's, log-mel -> per-frame features) trains with it; the
pose/blink generator regresses rho from the (detached) audio features.

Shape legend: B batch, T window frames, S image size, Z latent channels, h latent size,
P pose/blink dims, Ce FDE embedding channels.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeth.audio import AudioConfig
from edgeth.models.common.diffusion import TorchSchedule
from edgeth.models.common.pose_generator import ControlGenerator
from edgeth.models.ifmdm.config import Stage2Config
from edgeth.models.ifmdm.stage2 import AudioEncoder
from edgeth.models.mdcf.config import POSE_KEYS, MDCFConfig
from edgeth.models.mdcf.denoiser import LatentDenoiser


def audio_encoder(cfg: MDCFConfig, audio: AudioConfig) -> AudioEncoder:
    """IF-MDM's audio encoder (log-mel frontend + dilated 1-D convs) at this preset's widths."""
    d = cfg.diffusion
    return AudioEncoder(Stage2Config(audio_channels=d.audio_channels, audio_dim=d.audio_dim,
                                     audio_blocks=d.audio_blocks, audio_bound=d.audio_bound), audio)


class LatentDiffusion(nn.Module):
    def __init__(self, cfg: MDCFConfig, audio: AudioConfig = AudioConfig()):
        super().__init__()
        self.cfg = cfg
        d = cfg.diffusion
        self.audio_encoder = audio_encoder(cfg, audio)
        self.denoiser = LatentDenoiser(d, cfg.lmae.latent_channels, cfg.fde.enc_channels[-1])
        self.pose_gen = ControlGenerator(d.audio_dim, POSE_KEYS, d.pose_channels)  # PBNet's role
        self.sched = TorchSchedule(d.schedule)
        self.register_buffer("latent_scale", torch.ones(cfg.lmae.latent_channels))
        self.pool = 2**cfg.lmae.down
        self._mdcf: list[nn.Module] = []  # frozen (fde, lmae): not submodules, their weights have their own files

    def attach(self, fde: nn.Module, lmae: nn.Module) -> "LatentDiffusion":
        self._mdcf = [fde.eval().requires_grad_(False), lmae.eval().requires_grad_(False)]
        return self

    def context(self, emb: torch.Tensor) -> torch.Tensor:
        """FDE embedding [B, Ce, S/4, S/4] -> the denoiser's source condition [B, Ce, h, h]."""
        return F.avg_pool2d(emb, self.pool)

    @torch.no_grad()
    def latents(self, source: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mu [B, T, Z, h, h], origin [B, Z, h, h], context [B, Ce, h, h]) of frames [B, T, 3, S, S] w.r.t. source."""
        fde, lmae = (m.to(source.device) for m in self._mdcf)
        b, t = frames.shape[:2]
        src = source[:, None].expand(b, t, *source.shape[1:]).reshape(b * t, *source.shape[1:])
        mu, _ = lmae.encode(fde.estimator(src, frames.reshape(b * t, *frames.shape[2:])))
        origin, _ = lmae.encode(fde.estimator(source, source))
        return mu.reshape(b, t, *mu.shape[1:]), origin, self.context(fde.encoder(source))

    def standardize(self, mu: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
        """LMAE latents [B, T, Z, h, h] and the source's origin [B, Z, h, h] -> the diffusion variable x0."""
        return (mu - origin[:, None]) / self.latent_scale.reshape(1, 1, -1, 1, 1)

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not self._mdcf:
            raise RuntimeError("attach(fde, lmae) before training the latent diffusion")
        frames, rho = batch["frames"], batch["rho"]
        mu, origin, ctx = self.latents(batch["source"], frames)
        x0 = self.standardize(mu, origin)
        b = x0.shape[0]
        t = self.sched.sample_t(b, x0.device)
        eps = torch.randn_like(x0)
        x_t = self.sched.q_sample(x0, t, eps)
        feats = self.audio_encoder(batch["audio"])
        keep = (torch.rand(b, 1, 1, device=x0.device) >= self.cfg.diffusion.p_uncond).float()
        out = self.denoiser(x_t, t.float(), feats * keep, rho * keep, ctx)
        diff = F.mse_loss(out, self.sched.target(x0, t, eps))
        pose = self.pose_gen.loss(feats.detach(), rho)
        loss = diff + self.cfg.diffusion.pose_weight * pose
        return {"loss": loss, "diffusion": diff.detach(), "pose": pose.detach()}
