"""MDCF configuration: frozen dataclasses, the three presets and the compression ratios.

Follows "Microscope: efficient diffusion with two-stage dynamics compression" (seeds/001):
FDE (flow-aware dynamics extractor, §3.1) compresses a frame to first-stage dynamics [f; m]
at S/4 x S/4 x 3 (C_FDE = 16); LMAE (latent motion auto-encoder, §3.1 Eq. 4) compresses [f; m]
to a Gaussian latent at S/32 x S/32 x 4 (C_LMAE = 48): C_MDCF = 768 (§4.1). The paper's 192x
variant is `lmae_down=2` (latent at S/16). `compression()` computes the ratios from actual
tensor sizes, never from these constants.

- tiny:   64x64, trains on CPU in minutes (tests, CI, conformance); latent 2 x 2 x 4 per frame.
- mobile: 256x256, sized for a phone (latent 8 x 8 x 4; two-level factorized U-Net).
- paper:  512x512 (latent 16 x 16 x 4), published-scale widths.

Shape legend: S image size, Ce FDE embedding channels, Z latent channels (4), h = w = S/2^(2+lmae_down)
latent size, T frames per denoiser window, O window overlap, F audio features, P pose/blink dims.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from edgeth.data.probe import MOUTH_BOX
from edgeth.errors import InputError
from edgeth.sampling import DiffusionSchedule

# head pose + blink rho (§3.3): the corpus's ground-truth keys and the scale that brings each to ~unit range
POSE_KEYS = ("yaw", "pitch", "roll", "blink")
POSE_SCALE = (10.0, 5.0, 5.0, 1.0)


@dataclass(frozen=True)
class FDEConfig:
    image_size: int = 64
    enc_channels: tuple[int, ...] = (16, 32)  # E: two stride-2 stages -> S/4 embedding
    est_channels: tuple[int, ...] = (16, 32, 48)  # motion estimator: stride-2 stages from S to S/8, back to S/4
    dec_channels: tuple[int, ...] = (32, 16)  # D: S/4 -> S/2 -> S
    dec_res_blocks: int = 1  # residual blocks at S/4 (occlusion repair)
    flow_scale: float = 0.5  # tanh-bounded flow, normalized coordinates
    ssim_weight: float = 0.5
    vgg_weight: float = 0.0  # > 0 with vgg_weights: the paper's perceptual loss (local weights only)
    vgg_weights: str = ""
    # The mouth (issue 12; our addition, as IF-MDM's issue 18): a squared-error loss on the static
    # mouth box (the probe's box) and the shared mouth painter on the decoder, reading [f; m] there.
    # Without them the FDE's held-out re-render kept the mouth nearly shut (amplitude 0.06 at 600
    # steps; 0.17 at 1500 steps on a 48-clip corpus, where with them it is 1.02, lip sync r 0.96).
    # 0 / 0.0 in runs from before them.
    mouth_box: tuple[float, float, float, float] = MOUTH_BOX
    mouth_weight: float = 0.0
    mouth_loss: str = "mse"  # mse | l1 (models.common.losses.mouth_box_loss)
    mouth_patch_channels: int = 0

    def __post_init__(self):
        if len(self.enc_channels) != 2 or len(self.dec_channels) != 2:
            raise ValueError("FDE works at S/4: two encoder and two decoder stages")
        if self.image_size % 32:
            raise ValueError(f"image_size {self.image_size} must be a multiple of 32")
        if self.mouth_patch_channels < 0 or self.mouth_weight < 0 or self.mouth_loss not in ("l1", "mse"):
            raise ValueError("mouth_patch_channels and mouth_weight must be >= 0 and mouth_loss l1 or mse")

    def mouth_box_at(self, size: int) -> tuple[int, int, int, int]:
        """The mouth box (top, bottom, left, right) on a size x size grid."""
        return tuple(round(f * size) for f in self.mouth_box)  # type: ignore[return-value]

    @property
    def mouth_pixels(self) -> tuple[int, int, int, int]:
        """The mouth box in image pixels (the painter's box, the mouth loss)."""
        return self.mouth_box_at(self.image_size)

    @property
    def dyn_size(self) -> int:
        return self.image_size // 4


@dataclass(frozen=True)
class LMAEConfig:
    down: int = 3  # stride-2 stages after FDE's S/4: 3 -> S/32 (768x), 2 -> S/16 (192x)
    latent_channels: int = 4
    channels: tuple[int, ...] = (16, 32, 32)  # one per stage
    lambda_mse: float = 1.0
    lambda_igc: float = 1.0
    lambda_kl: float = 1e-4
    # our addition (issue 12): the dynamics MSE again on the mouth box of [f; m], times this. The
    # mouth is a few cells of [f; m] with small values; the plain MSE (and the IGC's mouth term)
    # let the LMAE drop it: held-out re-render through the LMAE, mouth amplitude 0.03 at 600 steps
    # and 0.22 at 1500 (the FDE alone: 0.96); with 40, 0.93 (lip sync r 0.90) at 1500 steps and a
    # better PSNR (27.3 vs 26.5 dB). 0 in runs from before it.
    lambda_mouth: float = 0.0

    def __post_init__(self):
        if len(self.channels) != self.down:
            raise ValueError("LMAE needs one channel width per stride-2 stage")


@dataclass(frozen=True)
class DiffusionConfig:
    window: int = 20  # T frames per latent_denoiser call (static for export)
    overlap: int = 6  # O frames shared by consecutive windows (blended in latent space every step)
    channels: tuple[int, ...] = (48,)  # factorized U-Net widths, one per level (level i at h / 2^i)
    blocks: int = 2  # factorized blocks per level
    heads: int = 4
    context_channels: int = 32
    audio_channels: int = 96  # audio encoder (log-mel -> per-frame features, shared with IF-MDM)
    audio_dim: int = 64  # F
    audio_blocks: int = 3
    # the features bounded by tanh: unbounded, they grew from RMS 0.1 to 115 within 50 steps of
    # the tiny run, the pose generator reading them blew up (loss 0.5 -> 58) and the shared
    # gradient clip then starved the denoiser for ~100 of its 200 steps. (A per-frame layer norm
    # did that too but lost the features in FP16 and INT8: cosine 0.92 / 0.90 vs FP32.)
    audio_bound: bool = True
    pose_channels: int = 64  # pose/blink generator width
    pose_weight: float = 1.0
    p_uncond: float = 0.1  # drop audio + pose (classifier-free guidance)
    schedule: DiffusionSchedule = field(default_factory=DiffusionSchedule)
    steps: int = 10
    guidance: float = 1.0  # 1 = no guidance (one denoiser call per window and step)
    eta: float = 0.0

    def __post_init__(self):
        if not 0 <= self.overlap < self.window:
            raise ValueError("overlap must be in [0, window)")
        if any(c % self.heads for c in self.channels):
            raise ValueError("every U-Net width must be divisible by heads")


@dataclass(frozen=True)
class MDCFConfig:
    preset: str = "tiny"
    fde: FDEConfig = field(default_factory=FDEConfig)
    lmae: LMAEConfig = field(default_factory=LMAEConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    fps: int = 25
    render_batch: int = 4
    fde_steps: int = 3000
    lmae_steps: int = 2000
    diffusion_steps: int = 3000
    batch: int = 8
    window_batch: int = 4
    lr: float = 1e-3

    def __post_init__(self):
        if self.latent_size < 1:
            raise ValueError(f"image_size {self.fde.image_size} too small for {self.lmae.down} LMAE stages")
        n = len(self.diffusion.channels) - 1
        if self.latent_size % (2**n):
            raise ValueError(f"latent {self.latent_size}x{self.latent_size} does not fit {n + 1} U-Net levels")

    @property
    def latent_size(self) -> int:
        return self.fde.dyn_size // (2**self.lmae.down)

    def latent_shape(self) -> tuple[int, int, int]:
        return (self.lmae.latent_channels, self.latent_size, self.latent_size)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "MDCFConfig":
        subs = {"fde": FDEConfig, "lmae": LMAEConfig, "diffusion": DiffusionConfig, "schedule": DiffusionSchedule}

        def build(klass, dd):
            kw = {}
            names = {f.name for f in dataclasses.fields(klass)}
            for k, v in dd.items():
                if k not in names:
                    continue
                kw[k] = build(subs[k], v) if k in subs else tuple(v) if isinstance(v, list) else v
            return klass(**kw)

        if isinstance(d.get("diffusion"), dict) and "audio_bound" not in d["diffusion"]:
            d = {**d, "diffusion": {**d["diffusion"], "audio_bound": False}}  # a run from before the field: as trained
        return build(cls, d)

    def replace(self, **kw: Any) -> "MDCFConfig":
        return dataclasses.replace(self, **kw)


def compression(image: Any, dynamics: Any, latent: Any) -> dict[str, float]:
    """C_FDE, C_LMAE, C_MDCF from the sizes of one frame's tensors (arrays or torch tensors with
    a leading batch dim of 1, or per-frame shapes)."""
    def size(x: Any) -> int:
        shape = tuple(getattr(x, "shape", x))
        n = 1
        for s in shape[1:] if len(shape) == 4 else shape:
            n *= int(s)
        return n

    i, d, z = size(image), size(dynamics), size(latent)
    return {"fde": i / d, "lmae": d / z, "mdcf": i / z, "image_values": i, "dynamics_values": d, "latent_values": z}


# the mouth (issue 12): the squared-error mouth-box loss and the shared mouth painter on the FDE
# (as IF-MDM's presets), and the LMAE's extra dynamics MSE on the mouth box
MOUTH = dict(mouth_weight=40.0, mouth_loss="mse")
LMAE_MOUTH = 40.0


def _tiny() -> MDCFConfig:
    return MDCFConfig(preset="tiny", fde=FDEConfig(mouth_patch_channels=16, **MOUTH),
                      lmae=LMAEConfig(lambda_mouth=LMAE_MOUTH))


def _mobile() -> MDCFConfig:
    fde = FDEConfig(image_size=256, enc_channels=(32, 64), est_channels=(32, 64, 96), dec_channels=(48, 24),
                    dec_res_blocks=2, mouth_patch_channels=12, **MOUTH)
    lmae = LMAEConfig(channels=(64, 128, 128), lambda_mouth=LMAE_MOUTH)
    dif = DiffusionConfig(window=50, overlap=10, channels=(96, 128), blocks=2, heads=4, context_channels=64,
                          audio_channels=192, audio_dim=128, audio_blocks=4, pose_channels=128, steps=20)
    return MDCFConfig(preset="mobile", fde=fde, lmae=lmae, diffusion=dif, render_batch=1, fde_steps=200_000,
                      lmae_steps=100_000, diffusion_steps=200_000, batch=16, window_batch=8, lr=2e-4)


def _paper() -> MDCFConfig:
    fde = FDEConfig(image_size=512, enc_channels=(64, 128), est_channels=(64, 128, 256), dec_channels=(128, 64),
                    dec_res_blocks=4, mouth_patch_channels=32, **MOUTH)
    lmae = LMAEConfig(channels=(128, 256, 256), lambda_mouth=LMAE_MOUTH)
    dif = DiffusionConfig(window=100, overlap=20, channels=(256, 384, 512), blocks=2, heads=8, context_channels=128,
                          audio_channels=512, audio_dim=768, audio_blocks=6, pose_channels=256, steps=50)
    return MDCFConfig(preset="paper", fde=fde, lmae=lmae, diffusion=dif, render_batch=1, fde_steps=400_000,
                      lmae_steps=200_000, diffusion_steps=400_000, batch=32, window_batch=16, lr=1e-4)


PRESETS = {"tiny": _tiny, "mobile": _mobile, "paper": _paper}


def preset(name: str) -> MDCFConfig:
    if name not in PRESETS:
        raise InputError(f"unknown MDCF preset {name!r}", f"choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]()


def variant_192(cfg: MDCFConfig) -> MDCFConfig:
    """The paper's 192x variant of a preset: the latent at S/16 (two LMAE stages)."""
    return cfg.replace(lmae=dataclasses.replace(cfg.lmae, down=2, channels=cfg.lmae.channels[:2]))
