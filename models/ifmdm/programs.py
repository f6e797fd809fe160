"""IF-MDM's deployable pieces as edgeth Programs (static shapes, numpy-friendly I/O).

  appearance_encoder  image [1, 3, S, S] in [0, 1] -> a^0..a^K (appearance), m' [1, D]   once per portrait
  audio_frontend      wave [1, 640 T] 16 kHz      -> log-mel [1, 4 T, M]                once per window (FP32 always)
  audio_encoder       log-mel [1, 4 T, M]         -> speech features [1, T, F]          once per window
  motion_denoiser     x_t [2, T, D], t [2], audio [2, T, F], m' [2, D], m^mu [2, D],
                      m^sigma [2, 1], keep [2, 2]  -> prediction [2, T, D]               per DDIM step
                      (row 0 conditioned, row 1 keep = 0: classifier-free guidance by the host)
  renderer            a^0..a^K, m' [1, D], motion [N, D] -> frames [N, 3, S, S] in [0, 1]  per N frames

Shape legend: S image size, D motion dim, T window frames, F audio features, N renderer batch,
K appearance levels (a^0 is the image scaled to [-1, 1]), M mel bins.

The log-mel frontend is its own program: its DFT + log is a fixed DSP step that stays FP32 at
every precision (INT8 power spectra are meaningless under a log), that an app may replace with
its platform's DSP, and that is checked on its own golden calls. Folded into audio_encoder, its
float reassociation on near-silent bins (~3e-5 in log units on XNNPACK) was amplified ~20x by
the learned encoder and missed the 1e-4 FP32 program bound though the port was correct.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from edgeth.models.common.flops import annotate
from edgeth.models.ifmdm.config import IFMDMConfig
from edgeth.models.ifmdm.stage1 import Renderer, VisualEncoder
from edgeth.program import Program, TensorSpec

PROGRAM_ORDER = ("appearance_encoder", "audio_frontend", "audio_encoder", "motion_denoiser", "renderer")


class AppearanceEncoderProgram(nn.Module):
    def __init__(self, encoder: VisualEncoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, image: torch.Tensor):
        feats, motion = self.encoder(image)
        return (*feats, motion)


class AudioEncoderProgram(nn.Module):
    """The learned part of stage 2's AudioEncoder (log-mel -> features), without its frontend:
    a shallow copy sharing every weight and buffer, whose module table drops `frontend` (else
    the DFT basis rides along as an unused constant, which ExecuTorch rejects)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        net = copy.copy(encoder)
        net._modules = {k: m for k, m in encoder._modules.items() if k != "frontend"}
        self.encoder = net

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.encoder.encode(logmel)


class RendererProgram(nn.Module):
    def __init__(self, renderer: Renderer, levels: int):
        super().__init__()
        self.renderer, self.levels = renderer, levels

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        feats, hint, motion = list(xs[: self.levels]), xs[self.levels], xs[self.levels + 1]
        return self.renderer(feats, hint, motion)


def app_names(cfg: IFMDMConfig) -> list[str]:
    return [f"app{i}" for i in range(cfg.stage1.app_levels + 1)]


def build_programs(model: nn.Module, cfg: IFMDMConfig, *, flops: bool = True) -> list[Program]:
    """Programs sharing the (eval-mode) weights of an IFMDM model (stage1 + stage2)."""
    s1, s2 = cfg.stage1, cfg.stage2
    s, d, t, f, n = s1.image_size, s1.motion_dim, s2.window, s2.audio_dim, cfg.render_batch
    spf = 16000 // cfg.fps
    b = s2.denoiser_batch
    g = torch.Generator().manual_seed(0)
    app_specs = [TensorSpec(nm, (1, c, h, w), kind="image" if i == 0 else "features")
                 for i, (nm, (c, h, w)) in enumerate(zip(app_names(cfg), s1.app_shapes))]
    hint = TensorSpec("motion_hint", (1, d), kind="motion")
    model = model.eval()

    enc = AppearanceEncoderProgram(model.stage1.encoder).eval()
    image = torch.rand(1, 3, s, s, generator=g)
    front = model.stage2.audio_encoder.frontend.eval()
    aud = AudioEncoderProgram(model.stage2.audio_encoder).eval()
    wave = (torch.randn(1, spf * t, generator=g) * 0.1)
    with torch.no_grad():
        logmel = front(wave)
    m = logmel.shape[-1]
    den = model.stage2.denoiser.eval()
    den_x = (torch.randn(b, t, d, generator=g), torch.tensor([500.0, 500.0]), torch.randn(b, t, f, generator=g),
             torch.rand(b, d, generator=g) * 0.2, torch.rand(b, d, generator=g) * 0.2, torch.full((b, 1), 0.05),
             torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
    ren = RendererProgram(model.stage1.renderer, s1.app_levels + 1).eval()
    with torch.no_grad():
        app_out = enc(image)
    ren_x = (*app_out, (torch.rand(n, d, generator=g) - 0.5) * 0.4)

    progs = [
        Program("appearance_encoder", enc, [TensorSpec("image", (1, 3, s, s), kind="image")],
                [*app_specs, hint], (image,), meta={"runs": "once per portrait"}),
        Program("audio_frontend", front, [TensorSpec("audio", (1, spf * t), kind="audio")],
                [TensorSpec("log_mel", tuple(logmel.shape), kind="features")], (wave,),
                meta={"runs": "once per window", "frames": t, "precision": "fp32"}),
        Program("audio_encoder", aud, [TensorSpec("log_mel", (1, logmel.shape[1], m), kind="features")],
                [TensorSpec("speech_features", (1, t, f), kind="features")], (logmel,),
                meta={"runs": "once per window", "frames": t}),
        Program("motion_denoiser", den,
                [TensorSpec("x_t", (b, t, d), kind="motion"), TensorSpec("timestep", (b,), kind="scalar"),
                 TensorSpec("speech_features", (b, t, f), kind="features"),
                 TensorSpec("motion_hint", (b, d), kind="motion"), TensorSpec("motion_mean", (b, d), kind="motion"),
                 TensorSpec("motion_std", (b, 1), kind="scalar"), TensorSpec("cond_keep", (b, 2), kind="scalar")],
                [TensorSpec("prediction", (b, t, d), kind="motion")], den_x,
                meta={"runs": "per DDIM step per window", "frames": t, "prediction": s2.schedule.prediction},
                float_only=("time_embed",)),
        Program("renderer", ren, [*app_specs, hint, TensorSpec("motion", (n, d), kind="motion")],
                [TensorSpec("frames", (n, 3, s, s), kind="image")], ren_x,
                meta={"runs": "per batch of frames", "frames": n}),
    ]
    return annotate(progs, flops)


def flops_per_frame(progs: list[Program], cfg: IFMDMConfig, steps: int | None = None) -> dict[str, float]:
    """GFLOPs per generated video frame of each program (denoiser: all DDIM steps of a window,
    amortised over the frames a window adds)."""
    s2 = cfg.stage2
    steps = steps or s2.steps
    new = s2.window - s2.overlap
    per = {}
    for p in progs:
        fl = (p.flops or 0) / 1e9
        per[p.name] = {"appearance_encoder": 0.0, "audio_frontend": fl / new, "audio_encoder": fl / new,
                       "motion_denoiser": fl * steps / new,
                       "renderer": fl / cfg.render_batch}[p.name]
    return per
