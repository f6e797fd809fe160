"""VQTalker configuration (seeds/002): frozen dataclasses and the presets tiny / mobile / paper.

- tiny:   64x64, trains on CPU in a minute or two (tests, CI, the conformance fixture).
- mobile: 256x256, sized for a phone (`benchmarks/vqtalker_quality.py --flops` reports params
          and GFLOPs per frame of each program).
- paper:  512x512, 12-layer generator (paper §4.1: 12 layers, G = 12, R = 4, levels [5,5,5,5]).

The tokenizer is IF-MDM stage 1's encoder and warping renderer (edgeth.models.ifmdm.stage1)
driven by a quantized motion difference instead of a direction-bank code; `stage1()` builds
the Stage1Config those blocks read. Quantizer variants (VQ / GVQ / RVQ / GRVQ / GRFSQ) are
`quantizer=QuantizerConfig(...)` overrides.

Shape legend: S image size, Dm = G*d motion feature dims, Cg global face feature, V speech
vocabulary, T generator window (frames), E generator width, C controls (pose, gaze, blink).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from edgeth.errors import InputError
from edgeth.models.common.fsq import QuantizerConfig
from edgeth.models.ifmdm.config import MOUTH_PRESET

CONTROL_KEYS = ("yaw", "pitch", "roll", "gaze_x", "gaze_y", "blink")  # per-frame controls (C = 6)


@dataclass(frozen=True)
class VQTalkerConfig:
    preset: str = "tiny"
    image_size: int = 64
    fps: int = 25
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    # facial motion tokenizer (IF-MDM stage-1 blocks)
    enc_channels: tuple[int, ...] = (16, 32, 64, 128)
    app_levels: int = 3
    latent_dim: int = 128
    mouth_code_dim: int = 16  # motion feature dims read from the mouth crop
    dec_channels: tuple[int, ...] = (64, 48, 32, 16)
    refine_blocks: tuple[int, ...] = (0, 1, 0, 0)
    style_dim: int = 128
    global_dim: int = 64  # Cg: f_g
    mouth_weight: float = 4.0
    mouth_loss: str = "l1"  # l1 | mse (IF-MDM's Stage1Config: the presets use mse and the painter)
    mouth_patch_channels: int = 0  # > 0: IF-MDM's mouth painter on the renderer (0 in runs from before it)
    change_weight: float = 2.0
    # speech tokenizer (k-means over pooled log-mel at the video frame rate)
    speech_vocab: int = 64
    kmeans_iters: int = 25
    # coarse-to-fine generator (bidirectional transformer over a window)
    window: int = 25
    gen_width: int = 128
    gen_depth: int = 2
    gen_heads: int = 4
    gen_mlp_ratio: float = 2.0
    controls_width: int = 64  # audio-conditioned pose / gaze / blink generator (controls.py)
    render_batch: int = 5  # frames per renderer / tokenizer_encoder call (static for export)
    # training budgets
    tokenizer_steps: int = 3000
    tokenizer_batch: int = 8
    tokenizer_lr: float = 1e-3
    generator_steps: int = 3000
    generator_batch: int = 16
    generator_lr: float = 1e-3
    controls_steps: int = 200
    controls_batch: int = 16
    controls_lr: float = 2e-3

    def __post_init__(self):
        if self.window % self.render_batch:
            raise ValueError("window must be a multiple of render_batch")
        if not 0 <= self.mouth_code_dim < self.quantizer.dim:
            raise ValueError("mouth_code_dim must be in [0, quantizer dim)")

    @property
    def motion_dim(self) -> int:
        return self.quantizer.dim

    def stage1(self):
        """The IF-MDM Stage1Config the encoder / warping renderer blocks are built from."""
        from edgeth.models.ifmdm.config import Stage1Config

        return Stage1Config(image_size=self.image_size, motion_dim=self.motion_dim, enc_channels=self.enc_channels,
                            app_levels=self.app_levels, latent_dim=self.latent_dim, mouth_code_dim=self.mouth_code_dim,
                            dec_channels=self.dec_channels, refine_blocks=self.refine_blocks,
                            style_dim=self.style_dim, mouth_weight=self.mouth_weight, mouth_loss=self.mouth_loss,
                            mouth_patch_channels=self.mouth_patch_channels, change_weight=self.change_weight)

    def bitrate(self) -> float:
        return self.quantizer.bitrate(self.fps)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "VQTalkerConfig":
        kw: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                continue
            v = d[f.name]
            if f.name == "quantizer":
                v = QuantizerConfig(**{k: tuple(x) if isinstance(x, list) else x for k, x in v.items()})
            elif isinstance(v, list):
                v = tuple(v)
            kw[f.name] = v
        return cls(**kw)

    def replace(self, **kw: Any) -> "VQTalkerConfig":
        return dataclasses.replace(self, **kw)


# IF-MDM's mouth painter and squared mouth loss in every preset (issue 18; models/ifmdm/config.py)
def _tiny() -> VQTalkerConfig:
    return VQTalkerConfig(preset="tiny", mouth_patch_channels=32, **MOUTH_PRESET)


def _mobile() -> VQTalkerConfig:
    return VQTalkerConfig(preset="mobile", mouth_patch_channels=12, **MOUTH_PRESET, image_size=256, enc_channels=(16, 32, 64, 128, 256, 256), app_levels=4,
                          latent_dim=256, dec_channels=(128, 96, 64, 32, 16), refine_blocks=(0, 1, 0, 0, 0),
                          style_dim=256, global_dim=128, speech_vocab=512, window=50, gen_width=256, gen_depth=6,
                          gen_heads=4, gen_mlp_ratio=4.0, controls_width=128, render_batch=1, tokenizer_steps=200_000,
                          generator_steps=200_000, controls_steps=20_000, tokenizer_batch=16, generator_batch=64,
                          tokenizer_lr=2e-4, generator_lr=2e-4)


def _paper() -> VQTalkerConfig:
    return VQTalkerConfig(preset="paper", mouth_patch_channels=32, **MOUTH_PRESET, image_size=512, enc_channels=(32, 64, 128, 256, 512, 512, 512), app_levels=5,
                          latent_dim=512, dec_channels=(512, 256, 128, 64, 32, 16), refine_blocks=(1, 1, 1, 1, 0, 0),
                          style_dim=512, global_dim=512, speech_vocab=4096, window=100, gen_width=768, gen_depth=12,
                          gen_heads=12, gen_mlp_ratio=4.0, controls_width=256, render_batch=1, tokenizer_steps=800_000,
                          generator_steps=400_000, controls_steps=50_000, tokenizer_batch=32, generator_batch=128,
                          tokenizer_lr=2e-4, generator_lr=1e-4)


PRESETS = {"tiny": _tiny, "mobile": _mobile, "paper": _paper}


def preset(name: str) -> VQTalkerConfig:
    if name not in PRESETS:
        raise InputError(f"unknown VQTalker preset {name!r}", f"choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]()
