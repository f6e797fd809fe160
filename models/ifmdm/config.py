"""IF-MDM configuration: frozen dataclasses and the three presets (tiny / mobile / paper).

IF-MDM (Implicit Face Motion Diffusion Model), seeds/004: stage 1 (§3.2, Fig. 4) is a
LIA-style visual encoder + warping generator over a 20-D tanh motion code; stage 2 (§3.3,
Fig. 3) a diffusion transformer over windows of motion codes conditioned on speech, the
motion hint m', the window's motion mean m^mu and standard deviation m^sigma.

- tiny:   64x64, trains on CPU in minutes (tests, CI).
- mobile: 256x256, sized for a phone: renderer <= 3 GFLOPs/frame, small transformer.
- paper:  512x512, 20-D motion, published-scale diffusion transformer (wav2vec-width audio).

Shape legend: S image size, D motion dim, T window frames, F audio feature width,
E transformer width, L encoder latent / direction-bank width.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from edgeth.data.probe import MOUTH_BOX
from edgeth.errors import InputError
from edgeth.sampling import DiffusionSchedule


@dataclass(frozen=True)
class Stage1Config:
    image_size: int = 64
    motion_dim: int = 20
    # encoder: one stride-2 stage per entry (S/2, S/4, ...), down to a 4x4 map
    enc_channels: tuple[int, ...] = (16, 32, 64, 128)
    app_levels: int = 3  # appearance features kept: S/2 .. S/2^app_levels (plus the image itself)
    latent_dim: int = 128  # L: encoder latent and direction-bank width
    # Mouth code: the last `mouth_code_dim` entries of the motion code are read from a fixed crop
    # of the aligned portrait (`mouth_box`: top, bottom, left, right as fractions of the frame;
    # where the mouth lies in a talking-head crop for every pose: the box the motion probe reads).
    # 0 = one global head only.
    mouth_code_dim: int = 6
    mouth_box: tuple[float, float, float, float] = MOUTH_BOX
    mouth_channels: tuple[int, ...] = (32, 64)  # crop encoder: stride-1 stem, then stride-2 stages
    mouth_patch_channels: int = 0  # > 0: a mouth painter on the mouth box at full resolution (width)
    # decoder widths from the coarsest appearance level up to full resolution (app_levels + 1)
    dec_channels: tuple[int, ...] = (64, 48, 32, 16)
    refine_blocks: tuple[int, ...] = (0, 1, 0, 0)  # residual blocks per decoder level (teeth/occlusion)
    style_dim: int = 128
    style_map_channels: int = 16  # channels of the spatial style map fed to the coarsest decoder level
    flow_scale: float = 0.25  # flow head output scale (normalized coords)
    direction_init: float = 1.0  # std of the direction bank at init (code differences move the style)
    film_init: float = 0.5  # FiLM init std x sqrt(style_dim): the style steers features from step one
    ssim_weight: float = 0.5
    code_weight: float = 0.001  # penalty on pre-tanh motion coefficients (keeps tanh out of saturation)
    change_weight: float = 2.0  # L1 weighted by source/driving difference (focus on what moved)
    mouth_weight: float = 4.0  # extra loss on the mouth box (the mouth is ~4% of the frame but carries lip sync)
    mouth_loss: str = "l1"  # l1 | mse: the metric of that extra loss
    vgg_weight: float = 0.0  # > 0 with vgg_weights: add the VGG-19 feature loss
    vgg_weights: str = ""  # a local VGG-19 state dict (nothing is downloaded)

    def __post_init__(self):
        n = len(self.enc_channels)
        if self.image_size % (2**n) or self.image_size // (2**n) < 2:
            raise ValueError(f"image_size {self.image_size} does not fit {n} stride-2 stages")
        if not 1 <= self.app_levels <= n:
            raise ValueError("app_levels must be in 1..len(enc_channels)")
        if len(self.dec_channels) != self.app_levels + 1 or len(self.refine_blocks) != self.app_levels + 1:
            raise ValueError("dec_channels and refine_blocks need app_levels + 1 entries")
        if not 0 <= self.mouth_code_dim < self.motion_dim:
            raise ValueError("mouth_code_dim must be in [0, motion_dim)")
        if self.mouth_patch_channels < 0 or self.mouth_loss not in ("l1", "mse"):
            raise ValueError("mouth_patch_channels must be >= 0 and mouth_loss l1 or mse")
        t, b, l, r = self.mouth_box
        if not (0 <= t < b <= 1 and 0 <= l < r <= 1):
            raise ValueError(f"mouth_box {self.mouth_box} is not (top, bottom, left, right) fractions in [0, 1]")

    @property
    def mouth_pixels(self) -> tuple[int, int, int, int]:
        """The mouth crop in pixels (top, bottom, left, right) at image_size."""
        return tuple(round(f * self.image_size) for f in self.mouth_box)  # type: ignore[return-value]

    @property
    def bottom_size(self) -> int:
        return self.image_size // (2 ** len(self.enc_channels))

    @property
    def app_shapes(self) -> list[tuple[int, int, int]]:
        """(C, H, W) of the appearance features the encoder hands the renderer, fine to coarse."""
        s = self.image_size
        return [(3, s, s)] + [(self.enc_channels[i], s >> (i + 1), s >> (i + 1)) for i in range(self.app_levels)]


@dataclass(frozen=True)
class Stage2Config:
    motion_dim: int = 20
    window: int = 20  # T frames per diffusion window (static for export)
    overlap: int = 4  # frames shared with the previous window (chaining by inpainting)
    blend: int = 2  # of those, the last ones cross-faded from the previous window instead of imposed
    # audio encoder (stands in for wav2vec): log-mel -> per-frame features
    audio_channels: int = 96
    audio_dim: int = 64  # F
    audio_blocks: int = 3
    audio_bound: bool = False  # tanh on the output features (MDCF turns it on; IF-MDM as trained)
    # diffusion transformer
    width: int = 128  # E
    depth: int = 3
    heads: int = 4
    mlp_ratio: float = 2.0
    p_uncond: float = 0.1  # drop every condition (classifier-free guidance)
    p_drop_audio: float = 0.05
    p_drop_stats: float = 0.05
    vel_weight: float = 1.0  # velocity loss on predicted x0 (temporal smoothness)
    schedule: DiffusionSchedule = field(default_factory=DiffusionSchedule)
    steps: int = 50  # default DDIM steps at inference
    guidance: float = 2.0
    eta: float = 0.0
    motion_mean_mode: str = "evolving"  # stable | evolving | mix (paper §3.4)
    mean_mix: float = 0.5  # weight of m' in "mix" mode
    denoiser_batch: int = 2  # [cond, uncond]

    def __post_init__(self):
        if not 0 <= self.overlap < self.window:
            raise ValueError("overlap must be in [0, window)")
        if not 0 <= self.blend <= self.overlap:
            raise ValueError("blend must be in [0, overlap]")
        if self.width % self.heads:
            raise ValueError("width must be divisible by heads")
        if self.motion_mean_mode not in MEAN_MODES:
            raise ValueError(f"motion_mean_mode {self.motion_mean_mode!r} not in {MEAN_MODES}")


MEAN_MODES = ("stable", "evolving", "mix")


@dataclass(frozen=True)
class IFMDMConfig:
    preset: str = "tiny"
    stage1: Stage1Config = field(default_factory=Stage1Config)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    fps: int = 25
    render_batch: int = 4  # frames per renderer call (static for export)
    # training budgets (per stage) and batch sizes
    stage1_steps: int = 3000
    stage2_steps: int = 3000
    stage1_batch: int = 8
    stage2_batch: int = 32
    stage1_lr: float = 1e-3
    stage2_lr: float = 1e-3

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "IFMDMConfig":
        def build(klass, dd):
            kw = {}
            for f in dataclasses.fields(klass):
                if f.name not in dd:
                    continue
                v = dd[f.name]
                if f.name == "schedule":
                    v = DiffusionSchedule.from_json(v)
                elif f.name == "stage1":
                    # runs from before the mouth code had one global motion head
                    v = build(Stage1Config, {"mouth_code_dim": 0, **v})
                elif f.name == "stage2":
                    v = build(Stage2Config, v)
                elif isinstance(v, list):
                    v = tuple(v)
                kw[f.name] = v
            return klass(**kw)

        return build(cls, d)

    def replace(self, **kw: Any) -> "IFMDMConfig":
        return dataclasses.replace(self, **kw)


# The mouth painter and the squared mouth loss (issue 18): with the L1 mouth loss and no painter
# the renderer never drew an open mouth (stage-1 re-render mouth amplitude 0.03 at 600 steps,
# 0.17 at 2400); with both, 0.70 at 1500 steps (benchmarks/ifmdm_amplitude.py, README).
MOUTH_PRESET = dict(mouth_loss="mse", mouth_weight=40.0)  # VQTalker's presets use it too


def _tiny() -> IFMDMConfig:
    return IFMDMConfig(preset="tiny", stage1=Stage1Config(mouth_patch_channels=32, **MOUTH_PRESET))


def _mobile() -> IFMDMConfig:
    s1 = Stage1Config(image_size=256, enc_channels=(16, 32, 64, 128, 256, 256), app_levels=4, latent_dim=256,
                      dec_channels=(128, 96, 64, 32, 16), refine_blocks=(0, 1, 0, 0, 0), style_dim=256,
                      mouth_patch_channels=12, **MOUTH_PRESET)  # 12: the renderer stays <= 3 GFLOP/frame
    s2 = Stage2Config(window=50, overlap=10, blend=5, audio_channels=192, audio_dim=128, audio_blocks=4, width=256, depth=6,
                      heads=4, mlp_ratio=4.0)
    return IFMDMConfig(preset="mobile", stage1=s1, stage2=s2, render_batch=1, stage1_steps=200_000,
                       stage2_steps=200_000, stage1_batch=16, stage2_batch=128, stage1_lr=2e-4, stage2_lr=2e-4)


def _paper() -> IFMDMConfig:
    s1 = Stage1Config(image_size=512, enc_channels=(32, 64, 128, 256, 512, 512, 512), app_levels=5, latent_dim=512,
                      dec_channels=(512, 256, 128, 64, 32, 16), refine_blocks=(1, 1, 1, 1, 0, 0), style_dim=512,
                      mouth_patch_channels=32, **MOUTH_PRESET)
    s2 = Stage2Config(window=100, overlap=10, blend=5, audio_channels=512, audio_dim=768, audio_blocks=6, width=512, depth=8,
                      heads=8, mlp_ratio=4.0, steps=100)
    return IFMDMConfig(preset="paper", stage1=s1, stage2=s2, render_batch=1, stage1_steps=800_000,
                       stage2_steps=400_000, stage1_batch=32, stage2_batch=256, stage1_lr=2e-4, stage2_lr=1e-4)


PRESETS = {"tiny": _tiny, "mobile": _mobile, "paper": _paper}


def preset(name: str) -> IFMDMConfig:
    if name not in PRESETS:
        raise InputError(f"unknown IF-MDM preset {name!r}", f"choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]()
