"""TrainConfig (every knob of the shared loop), TrainResult, and the learning-rate schedule.

Schedule: AdamW; the learning rate rises linearly over `warmup_steps` (from lr/warmup_steps to
lr), then stays constant (schedule="constant", the default) or follows a half cosine from lr
down to lr * min_lr_ratio at max_steps (schedule="cosine"; changing max_steps on resume
changes the cosine). Weight decay applies to weights with >= 2 dims only (not to biases,
norm scales or embeddings' 1-D parts).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeth.errors import InputError

SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    max_steps: int = 1000
    batch_size: int = 8          # per process
    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    grad_clip: float = 1.0       # 0 = off (the grad norm is still computed, logged and NaN-checked)
    ema_decay: float = 0.0       # 0 = off
    log_every: int = 10
    ckpt_every: int = 200
    seed: int = 0
    bf16: bool = True            # autocast bf16 on CUDA only; ignored on CPU
    num_workers: int = 0
    schedule: str = "constant"   # "constant" | "cosine" (after warmup)
    min_lr_ratio: float = 0.0    # cosine floor, as a fraction of lr
    ddp_find_unused: bool = False  # DDP find_unused_parameters (a step that skips a trainable param)

    def __post_init__(self):
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        bad = []
        for name in ("max_steps", "warmup_steps", "num_workers", "seed"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 0:
                bad.append(f"{name}={getattr(self, name)!r} (a non-negative integer)")
        for name in ("batch_size", "log_every", "ckpt_every"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                bad.append(f"{name}={getattr(self, name)!r} (an integer >= 1)")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            bad.append(f"lr={self.lr!r} (> 0)")
        if self.weight_decay < 0:
            bad.append(f"weight_decay={self.weight_decay!r} (>= 0)")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            bad.append(f"betas={self.betas!r} (two values in [0, 1))")
        if self.grad_clip < 0:
            bad.append(f"grad_clip={self.grad_clip!r} (>= 0; 0 = off)")
        if not 0.0 <= self.ema_decay < 1.0:
            bad.append(f"ema_decay={self.ema_decay!r} (in [0, 1); 0 = off)")
        if self.schedule not in SCHEDULES:
            bad.append(f"schedule={self.schedule!r} (one of {', '.join(SCHEDULES)})")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            bad.append(f"min_lr_ratio={self.min_lr_ratio!r} (in [0, 1])")
        if bad:
            raise InputError("invalid training config: " + "; ".join(bad), "fix the listed values")

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Build from a dict (e.g. a stage JSON's "config"); unknown keys are an InputError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InputError(f"unknown training config key(s): {', '.join(unknown)}",
                             f"use only: {', '.join(sorted(names))}")
        return cls(**d)


@dataclass
class TrainResult:
    step: int                          # optimizer steps completed (== max_steps on success)
    history: list[dict[str, Any]]      # every logged row of this stage, including earlier runs'
    out_dir: Path
    weights_path: Path                 # {stage}.safetensors: EMA weights when EMA is on, else raw
    raw_weights_path: Path | None = None   # {stage}.raw.safetensors when EMA is on
    resumed_from: int = 0              # step the run resumed at (0 = fresh)
    info: dict[str, Any] = field(default_factory=dict)  # the stage JSON as written


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Learning rate for the update with 0-based index `step`."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "cosine":
        span = max(1, cfg.max_steps - cfg.warmup_steps)
        t = min(1.0, (step - cfg.warmup_steps) / span)
        floor = cfg.lr * cfg.min_lr_ratio
        return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * t))
    return cfg.lr
