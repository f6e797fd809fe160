"""MDCF's deployable pieces as edgeth Programs (static shapes, numpy-friendly I/O).

  source_encoder        image [1, 3, S, S] in [0, 1] -> e [1, Ce, S/4, S/4], context [1, Ce, h, h],
                        latent origin [1, Z, h, h] (LMAE code of the motionless dynamics)   once per portrait
  audio_frontend        wave [1, 640 T] 16 kHz -> log-mel [1, 4 T, M]                 per window (FP32 always)
  audio_encoder         log-mel [1, 4 T, M] -> speech features [1, T, F]              per window
  pose_blink_generator  speech features [1, T, F] -> rho [1, T, P]                    per window
  latent_denoiser       z_t [1, T, Z, h, h], t [1], speech [1, T, F], rho [1, T, P],
                        context [1, Ce, h, h] -> prediction [1, T, Z, h, h]          per DDIM step per window
  lmae_decoder          z [N, Z, h, h] (LMAE units) -> [f; m] [N, 3, S/4, S/4]         per N frames
  renderer              image, e, [f; m] [N, 3, S/4, S/4] -> frames [N, 3, S, S]      per N frames
                        (FDE warp + decode)

No Conv3d and no 5-D grid_sample anywhere: the denoiser is factorized (models.mdcf.denoiser),
warping is 4-D (models.common.warp). The audio frontend and encoder are IF-MDM's programs'
modules (the frontend pinned to FP32, see models/ifmdm/programs.py for why it is separate).
source_encoder runs once per portrait and is pinned to FP32 too: its XNNPACK INT8 .pte failed
to execute (error 0x10) in the first INT8 export; the per-frame programs carry the cost. So is
audio_encoder (once per window): INT8 lost its tanh-bounded features on ONNX Runtime.

Shape legend: S image size, Ce FDE embedding channels, h latent size, Z latent channels,
T window frames, F audio features, P pose/blink dims, M mel bins, N renderer batch.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from edgeth.models.common.flops import annotate
from edgeth.models.ifmdm.programs import AudioEncoderProgram
from edgeth.models.mdcf.config import POSE_KEYS, MDCFConfig
from edgeth.models.mdcf.run import MDCF
from edgeth.program import Program, TensorSpec

PROGRAM_ORDER = ("source_encoder", "audio_frontend", "audio_encoder", "pose_blink_generator", "latent_denoiser",
                 "lmae_decoder", "renderer")


class SourceEncoderProgram(nn.Module):
    def __init__(self, model: MDCF):
        super().__init__()
        self.encoder, self.estimator, self.lmae = model.fde.encoder, model.fde.estimator, model.lmae.encoder
        self.pool = model.diffusion.pool

    def forward(self, image: torch.Tensor):
        e = self.encoder(image)
        origin, _ = self.lmae(self.estimator(image, image))
        return e, nn.functional.avg_pool2d(e, self.pool), origin


def build_programs(model: MDCF, cfg: MDCFConfig, *, flops: bool = True, window: int | None = None) -> list[Program]:
    """Programs sharing the (eval-mode) weights of an MDCF model. `window` overrides T (benchmarks)."""
    model = model.eval()
    d = cfg.diffusion
    s, t, n = cfg.fde.image_size, window or d.window, cfg.render_batch
    zc, h, _ = cfg.latent_shape()
    p, f, q = len(POSE_KEYS), d.audio_dim, cfg.fde.dyn_size
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, s, s, generator=g)
    src = SourceEncoderProgram(model).eval()
    with torch.no_grad():
        emb, ctx, origin = src(image)
    front = model.diffusion.audio_encoder.frontend.eval()
    aud = AudioEncoderProgram(model.diffusion.audio_encoder).eval()
    wave = torch.randn(1, 640 * t, generator=g) * 0.1
    with torch.no_grad():
        logmel = front(wave)
        speech = aud(logmel).contiguous()  # a transposed example would fix a non-default dim order in the .pte
    pose = model.diffusion.pose_gen.eval()
    den = model.diffusion.denoiser.eval()
    with torch.no_grad():
        rho = pose(speech).contiguous()
    z_t = torch.randn(1, t, zc, h, h, generator=g)
    dec = model.lmae.decoder.eval()
    z = torch.randn(n, zc, h, h, generator=g) * model.diffusion.latent_scale.reshape(1, -1, 1, 1) + origin
    with torch.no_grad():
        dyn = dec(z)
    emb_spec = TensorSpec("source_features", tuple(emb.shape), kind="features")
    speech_spec = TensorSpec("speech_features", (1, t, f), kind="features")
    rho_spec = TensorSpec("rho", (1, t, p), kind="motion")
    ctx_spec = TensorSpec("context", tuple(ctx.shape), kind="features")
    progs = [
        Program("source_encoder", src, [TensorSpec("image", (1, 3, s, s), kind="image")], [emb_spec, ctx_spec, TensorSpec("latent_origin", tuple(origin.shape), kind="latent")],
                (image,), meta={"runs": "once per portrait", "precision": "fp32"}),
        Program("audio_frontend", front, [TensorSpec("audio", (1, 640 * t), kind="audio")],
                [TensorSpec("log_mel", tuple(logmel.shape), kind="features")], (wave,),
                meta={"runs": "once per window", "frames": t, "precision": "fp32"}),
        Program("audio_encoder", aud, [TensorSpec("log_mel", tuple(logmel.shape), kind="features")], [speech_spec],
                # pinned FP32 (as the frontend is; it runs once per window): with tanh-bounded features
                # (config.DiffusionConfig.audio_bound) per-tensor INT8 on ONNX Runtime lost them (cosine
                # 0.89 vs FP32, 0.90 with the conv before tanh kept float)
                (logmel,), meta={"runs": "once per window", "frames": t, "precision": "fp32"}),
        Program("pose_blink_generator", pose, [speech_spec], [rho_spec], (speech,),
                meta={"runs": "once per window", "frames": t, "rho": list(POSE_KEYS)}),
        Program("latent_denoiser", den,
                [TensorSpec("z_t", (1, t, zc, h, h), kind="latent"), TensorSpec("timestep", (1,), kind="scalar"),
                 speech_spec, rho_spec, ctx_spec],
                [TensorSpec("prediction", (1, t, zc, h, h), kind="latent")],
                (z_t, torch.tensor([500.0]), speech, rho, ctx),
                meta={"runs": "per DDIM step per window", "frames": t, "prediction": d.schedule.prediction},
                float_only=("time_embed",)),
        Program("lmae_decoder", dec, [TensorSpec("latent", (n, zc, h, h), kind="latent")],
                [TensorSpec("dynamics", (n, 3, q, q), kind="motion")], (z,),
                meta={"runs": "per batch of frames", "frames": n}),
        Program("renderer", model.fde.decoder.eval(), [TensorSpec("image", (1, 3, s, s), kind="image"), emb_spec,
                                                        TensorSpec("dynamics", (n, 3, q, q), kind="motion")],
                [TensorSpec("frames", (n, 3, s, s), kind="image")], (image, emb, dyn),
                meta={"runs": "per batch of frames", "frames": n}),
    ]
    return annotate(progs, flops)


def flops_per_frame(progs: list[Program], cfg: MDCFConfig, steps: int | None = None) -> dict[str, float]:
    """GFLOPs per generated frame of each program (windowed NAR: a window adds T - O frames;
    the denoiser runs every DDIM step)."""
    d = cfg.diffusion
    steps, new = steps or d.steps, d.window - d.overlap
    per_call = {"source_encoder": 0.0, "audio_frontend": 1 / new, "audio_encoder": 1 / new,
                "pose_blink_generator": 1 / new, "latent_denoiser": steps / new,
                "lmae_decoder": 1 / cfg.render_batch, "renderer": 1 / cfg.render_batch}
    return {p.name: (p.flops or 0) / 1e9 * per_call[p.name] for p in progs}
