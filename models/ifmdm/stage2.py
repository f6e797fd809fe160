"""IF-MDM stage 2: the implicit motion generator (seeds/004 §3.3, Fig. 3) and its audio encoder.

AudioEncoder (stands in for the frozen wav2vec of the paper, trained jointly here): raw
16 kHz audio -> edgeth.audio.AudioFrontend log-mel (4 mel frames per video frame) -> 1-D
convs with two stride-2 steps -> one feature vector per video frame.

MotionDenoiser: a diffusion transformer over a window of T motion codes, conditioned on
 - per-frame speech features a^f,
 - the motion hint m' (identity image), the window's motion mean m^mu and std m^sigma,
 - the diffusion time t.
Temporal modulation: every block's adaptive LayerNorm is driven per frame by
(time + motion statistics) + speech, so the modulation varies over the window. Residual
channel concatenation: each block adds Linear([a^f, x_t^f]) back into the hidden state.
Classifier-free guidance: `keep` [B, 2] (speech, statistics) switches each condition group to
a learned null embedding, so the host runs [cond, uncond] as a batch of 2 and mixes them.

Diffusion variable: x = (m - m^mu) / residual_scale, the window's motion relative to its
mean, scaled per dimension to unit variance (residual_scale from the training windows);
the host adds m^mu back. m^sigma is a scalar (RMS of m - m^mu over the window), fed to the
network divided by sigma_ref (the median training window) — the user's motion-degree knob.

Shape legend: B batch, T window frames, D motion dim, F audio features, E width,
S = 640 T audio samples, M = 80 mel bins.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeth.audio import AudioConfig
from edgeth.models.common.attention import ModulatedBlock
from edgeth.models.common.diffusion import TorchSchedule
from edgeth.models.common.layers import MLP, PlainLayerNorm, TimestepEmbedding, gelu
from edgeth.models.ifmdm.config import Stage2Config


class AudioEncoder(nn.Module):
    """wave [B, 640 T] float32 16 kHz -> speech features [B, T, F]."""

    def __init__(self, cfg: Stage2Config, audio: AudioConfig = AudioConfig()):
        super().__init__()
        from edgeth.audio import AudioFrontend

        self.frontend = AudioFrontend(audio)
        m, c = audio.n_mels, cfg.audio_channels
        self.register_buffer("mel_mean", torch.zeros(m))
        self.register_buffer("mel_std", torch.ones(m))
        self.conv_in = nn.Conv1d(m, c, 3, padding=1)
        self.down = nn.ModuleList([nn.Conv1d(c, c, 4, stride=2, padding=1) for _ in range(2)])  # 4 mels -> 1 frame
        self.blocks = nn.ModuleList(nn.Conv1d(c, c, 3, padding=2**i, dilation=2**i) for i in range(cfg.audio_blocks))
        self.mix = nn.ModuleList(nn.Conv1d(c, c, 1) for _ in range(cfg.audio_blocks))
        self.out = nn.Conv1d(c, cfg.audio_dim, 1)
        self.bound = cfg.audio_bound

    def logmel(self, wave: torch.Tensor) -> torch.Tensor:
        return self.frontend(wave)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.encode(self.frontend(wave))

    def encode(self, logmel: torch.Tensor) -> torch.Tensor:
        """log-mel [B, 4T, M] (the frontend's output) -> speech features [B, T, F]."""
        mel = (logmel - self.mel_mean) / self.mel_std  # [B, 4T, M]
        h = gelu(self.conv_in(mel.transpose(1, 2)))
        for d in self.down:
            h = gelu(d(h))
        for blk, mix in zip(self.blocks, self.mix):
            h = h + mix(gelu(blk(h)))
        feats = self.out(h).transpose(1, 2)
        return torch.tanh(feats) if self.bound else feats


class MotionDenoiser(nn.Module):
    """One diffusion step over a window: (x_t [B,T,D], t [B], audio [B,T,F], m' [B,D],
    m^mu [B,D], m^sigma [B,1], keep [B,2]) -> prediction [B,T,D] (schedule's prediction type)."""

    def __init__(self, cfg: Stage2Config):
        super().__init__()
        self.cfg = cfg
        d, e, f = cfg.motion_dim, cfg.width, cfg.audio_dim
        self.register_buffer("sigma_ref", torch.ones(()))
        self.in_proj = nn.Linear(d, e)
        self.pos = nn.Parameter(torch.randn(1, cfg.window, e) * 0.02)
        self.audio_proj = nn.Linear(f, e)
        self.null_audio = nn.Parameter(torch.zeros(e))
        self.stats = MLP(2 * d + 1, e, e)
        self.null_stats = nn.Parameter(torch.zeros(e))
        self.time_embed = TimestepEmbedding(e)
        self.time = MLP(e, e, e)
        self.concat = nn.ModuleList(nn.Linear(e + d, e) for _ in range(cfg.depth))  # residual channel concat
        self.blocks = nn.ModuleList(ModulatedBlock(e, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm_out = PlainLayerNorm(e, affine=False)
        self.ada_out = nn.Linear(e, 2 * e)
        self.out = nn.Linear(e, d)
        for lin in (self.ada_out, self.out):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, audio: torch.Tensor, hint: torch.Tensor, mu: torch.Tensor,
                sigma: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        k_audio, k_stats = keep[:, 0:1], keep[:, 1:2]
        a = self.audio_proj(audio)  # [B, T, E]
        a = k_audio[:, :, None] * a + (1 - k_audio[:, :, None]) * self.null_audio
        s = self.stats(torch.cat([hint, mu, sigma / self.sigma_ref], dim=-1))
        s = k_stats * s + (1 - k_stats) * self.null_stats
        c = (self.time(self.time_embed(t)) + s)[:, None, :] + a  # temporal modulation
        h = self.in_proj(x) + self.pos
        ax = torch.cat([a, x], dim=-1)
        for cat, blk in zip(self.concat, self.blocks):
            h = blk(h + cat(ax), c)
        shift, scale = self.ada_out(F.silu(c)).chunk(2, dim=-1)
        return self.out(self.norm_out(h) * (1 + scale) + shift)


def window_stats(motion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(m^mu [B, D], m^sigma [B, 1]) of motion windows [B, T, D]."""
    mu = motion.mean(dim=1)
    sigma = (motion - mu[:, None]).pow(2).mean(dim=(1, 2)).sqrt()[:, None]
    return mu, sigma


class Stage2Model(nn.Module):
    """Audio encoder + motion denoiser, trained with the DDPM objective on motion windows."""

    def __init__(self, cfg: Stage2Config, audio: AudioConfig = AudioConfig()):
        super().__init__()
        self.cfg = cfg
        self.audio_encoder = AudioEncoder(cfg, audio)
        self.denoiser = MotionDenoiser(cfg)
        self.sched = TorchSchedule(cfg.schedule)
        self.register_buffer("residual_scale", torch.ones(cfg.motion_dim))

    @torch.no_grad()
    def set_stats(self, mel_mean, mel_std, residual_scale, sigma_ref) -> None:
        """Data statistics fixed before training (they travel in the weights file)."""
        self.audio_encoder.mel_mean.copy_(torch.as_tensor(mel_mean))
        self.audio_encoder.mel_std.copy_(torch.as_tensor(mel_std).clamp_min(1e-3))
        self.residual_scale.copy_(torch.as_tensor(residual_scale).clamp_min(1e-4))
        self.denoiser.sigma_ref.fill_(float(max(float(sigma_ref), 1e-4)))

    def _keep(self, b: int, device) -> torch.Tensor:
        c = self.cfg
        u = torch.rand(b, 1, device=device) < c.p_uncond
        drop = torch.rand(b, 2, device=device) < torch.tensor([c.p_drop_audio, c.p_drop_stats], device=device)
        return (~(u | drop)).float()

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        motion, wave, hint = batch["motion"], batch["audio"], batch["hint"]
        b = motion.shape[0]
        mu, sigma = window_stats(motion)
        x0 = (motion - mu[:, None]) / self.residual_scale
        t = self.sched.sample_t(b, motion.device)
        eps = torch.randn_like(x0)
        x_t = self.sched.q_sample(x0, t, eps)
        feats = self.audio_encoder(wave)
        out = self.denoiser(x_t, t.float(), feats, hint, mu, sigma, self._keep(b, motion.device))
        diff = F.mse_loss(out, self.sched.target(x0, t, eps))
        x0_hat = self.sched.to_x0(x_t, t, out)
        vel = F.mse_loss(x0_hat[:, 1:] - x0_hat[:, :-1], x0[:, 1:] - x0[:, :-1])
        loss = diff + self.cfg.vel_weight * vel
        return {"loss": loss, "diffusion": diff.detach(), "velocity": vel.detach()}
