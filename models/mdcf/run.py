"""An MDCF run directory (RUN/) and the in-memory model it loads into.

RUN/mdcf.json              family, preset, full config, audio frontend, statistics, phases done, mode
RUN/fde.safetensors        phase one: the FDE (E, motion estimator, D)      (edgeth.train.fit)
RUN/lmae.safetensors       phase two: FDE (frozen: bit-identical to fde.*) + LMAE; in the
                           end-to-end ablation both trained, and no fde.safetensors
RUN/diffusion.safetensors  phase three: audio encoder, latent denoiser, pose/blink generator,
                           mel statistics and latent_scale buffers
RUN/<phase>.*              optimizer state, phase JSON and logs (resume)

Never unpickles: weights are safetensors, configs JSON.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from edgeth.audio import AudioConfig
from edgeth.errors import InputError
from edgeth.io_utils import write_json
from edgeth.models.common.run_json import read_family_json
from edgeth.models.mdcf.config import MDCFConfig
from edgeth.models.mdcf.diffusion import LatentDiffusion
from edgeth.models.mdcf.fde import FDE
from edgeth.models.mdcf.lmae import LMAE, CascadeTrainer

RUN_JSON = "mdcf.json"
RUN_VERSION = 1
PHASES = ("fde", "lmae", "diffusion")


class MDCF(nn.Module):
    def __init__(self, cfg: MDCFConfig, audio: AudioConfig = AudioConfig(), mode: str = "tpc"):
        super().__init__()
        self.cfg = cfg
        self.fde = FDE(cfg.fde)
        self.lmae = LMAE(cfg.lmae, cfg.fde)
        self.diffusion = LatentDiffusion(cfg, audio)
        self.mode = mode

    def cascade(self, mode: str | None = None) -> CascadeTrainer:
        return CascadeTrainer(self.fde, self.lmae, mode or self.mode)


@dataclass
class MDCFRun:
    cfg: MDCFConfig
    model: MDCF
    stats: dict[str, Any] = field(default_factory=dict)
    audio: AudioConfig = field(default_factory=AudioConfig)
    run_dir: Path | None = None
    phases: tuple[str, ...] = ()
    mode: str = "tpc"


def write_run_json(run_dir: Path, cfg: MDCFConfig, audio: AudioConfig, stats: dict[str, Any], phases: list[str],
                   mode: str) -> None:
    write_json(Path(run_dir) / RUN_JSON, {"family": "mdcf", "version": RUN_VERSION, "preset": cfg.preset,
                                          "config": cfg.to_json(), "audio": audio.to_json(), "stats": stats,
                                          "phases": [p for p in PHASES if p in phases], "mode": mode})


def read_run_json(run_dir: Path) -> dict[str, Any] | None:
    return read_family_json(Path(run_dir) / RUN_JSON, "mdcf", "MDCF")


def load_weights_into(model: MDCF, run_dir: Path, diffusion: bool = True) -> list[str]:
    """Load what the run has (lmae.safetensors carries the FDE it was trained with); returns phases loaded."""
    from edgeth.train import load_weights

    have = []
    if (run_dir / "lmae.safetensors").is_file():
        load_weights(model.cascade(), run_dir / "lmae.safetensors")
        have += ["fde", "lmae"]
    elif (run_dir / "fde.safetensors").is_file():
        load_weights(model.fde, run_dir / "fde.safetensors")
        have.append("fde")
    if diffusion and (run_dir / "diffusion.safetensors").is_file():
        load_weights(model.diffusion, run_dir / "diffusion.safetensors")
        have.append("diffusion")
    model.fde.requires_grad_(True)
    return have


def load_run(run_dir: str | Path, device: str = "cpu", require: tuple[str, ...] = ("lmae", "diffusion")) -> MDCFRun:
    run_dir = Path(run_dir)
    d = read_run_json(run_dir) if run_dir.is_dir() else None
    if d is None:
        raise InputError(f"{run_dir} is not an MDCF run (no {RUN_JSON})", "pass the --out folder of `edgeth train mdcf`")
    try:
        cfg = MDCFConfig.from_json(d["config"])
        audio = AudioConfig.from_json(d.get("audio", {}))
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{run_dir / RUN_JSON} has an invalid config ({e})", "re-train into a fresh directory") from e
    mode = d.get("mode", "tpc")
    model = MDCF(cfg, audio, mode)
    have = load_weights_into(model, run_dir)
    missing = [p for p in require if p not in have]
    if missing:
        raise InputError(f"{run_dir} has no {missing[0]} weights ({missing[0]}.safetensors)",
                         f"finish training: edgeth train mdcf --data DATA --out {run_dir} --phase {missing[0]}")
    model.diffusion.attach(model.fde, model.lmae)
    model.to(device).eval()
    return MDCFRun(cfg=cfg, model=model, stats=d.get("stats", {}), audio=audio, run_dir=run_dir, phases=tuple(have),
                   mode=mode)


def fresh_run(cfg: MDCFConfig, audio: AudioConfig = AudioConfig(), seed: int = 0) -> MDCFRun:
    """An untrained run (tests, FLOP counts, export dry runs)."""
    torch.manual_seed(seed)
    model = MDCF(cfg, audio).eval()
    model.diffusion.attach(model.fde, model.lmae)
    return MDCFRun(cfg=cfg, model=model, stats={"latent_scale": [1.0] * cfg.lmae.latent_channels}, audio=audio)
