"""An IF-MDM run directory (RUN/) and the in-memory model it loads into.

RUN/ifmdm.json         family, preset, full config, audio-frontend settings, motion statistics,
                       face framing of the training crops (runtime_py.face; default for older runs)
RUN/stage1.safetensors encoder + renderer weights      (written by edgeth.train.fit)
RUN/stage2.safetensors audio encoder + denoiser weights (incl. mel / motion statistics buffers)
RUN/stage{1,2}.*       optimizer state, stage JSON and logs (resume)

Never unpickles: weights are safetensors, configs JSON.

Shape legend: D motion dim.
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
from edgeth.models.ifmdm.config import IFMDMConfig
from edgeth.models.ifmdm.stage1 import Stage1Model
from edgeth.models.ifmdm.stage2 import Stage2Model
from edgeth.runtime_py.face import DEFAULT_FRAMING, Framing

RUN_JSON = "ifmdm.json"
RUN_VERSION = 1


class IFMDM(nn.Module):
    def __init__(self, cfg: IFMDMConfig, audio: AudioConfig = AudioConfig()):
        super().__init__()
        self.cfg = cfg
        self.stage1 = Stage1Model(cfg.stage1)
        self.stage2 = Stage2Model(cfg.stage2, audio)


@dataclass
class IFMDMRun:
    """A loaded checkpoint: what programs() and pipeline() need."""

    cfg: IFMDMConfig
    model: IFMDM
    stats: dict[str, Any] = field(default_factory=dict)  # motion statistics (see training.motion_stats)
    audio: AudioConfig = field(default_factory=AudioConfig)
    run_dir: Path | None = None
    stages: tuple[str, ...] = ()
    framing: dict[str, Any] = field(default_factory=lambda: DEFAULT_FRAMING.to_json())


def run_json(cfg: IFMDMConfig, audio: AudioConfig, stats: dict[str, Any], stages: list[str]) -> dict[str, Any]:
    return {"family": "ifmdm", "version": RUN_VERSION, "preset": cfg.preset, "config": cfg.to_json(),
            "audio": audio.to_json(), "stats": stats, "stages": sorted(set(stages)), "framing": DEFAULT_FRAMING.to_json()}


def write_run_json(run_dir: Path, cfg: IFMDMConfig, audio: AudioConfig, stats: dict[str, Any], stages: list[str]) -> None:
    write_json(Path(run_dir) / RUN_JSON, run_json(cfg, audio, stats, stages))


def read_run_json(run_dir: Path) -> dict[str, Any] | None:
    return read_family_json(Path(run_dir) / RUN_JSON, "ifmdm", "IF-MDM")


def load_run(run_dir: str | Path, device: str = "cpu", require: tuple[str, ...] = ("stage1", "stage2")) -> IFMDMRun:
    from edgeth.train import load_weights

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"run directory {run_dir} does not exist", "pass the --out folder of `edgeth train ifmdm`")
    d = read_run_json(run_dir)
    if d is None:
        raise InputError(f"{run_dir} has no {RUN_JSON}", "pass the --out folder of `edgeth train ifmdm`")
    try:
        cfg = IFMDMConfig.from_json(d["config"])
        audio = AudioConfig.from_json(d.get("audio", {}))
        framing = Framing.from_json(d.get("framing")).to_json()
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{run_dir / RUN_JSON} has an invalid config ({e})", "re-train into a fresh directory") from e
    model = IFMDM(cfg, audio)
    have = []
    for stage in ("stage1", "stage2"):
        path = run_dir / f"{stage}.safetensors"
        if path.is_file():
            load_weights(getattr(model, stage), path)
            have.append(stage)
        elif stage in require:
            raise InputError(f"{run_dir} has no {stage} weights ({path.name})",
                             f"finish training: edgeth train ifmdm --data DATA --out {run_dir} --stage {stage[-1]}")
    if "stage2" in require and not d.get("stats"):
        raise InputError(f"{run_dir / RUN_JSON} has no motion statistics", "re-run stage 2 training")
    model.to(device).eval()
    return IFMDMRun(cfg=cfg, model=model, stats=d.get("stats", {}), audio=audio, run_dir=run_dir, stages=tuple(have),
                  framing=framing)


def fresh_run(cfg: IFMDMConfig, audio: AudioConfig = AudioConfig(), seed: int = 0) -> IFMDMRun:
    """An untrained run (tests, FLOP counts, export dry runs)."""
    torch.manual_seed(seed)
    model = IFMDM(cfg, audio).eval()
    d = cfg.stage1.motion_dim
    stats = {"residual_scale": [1.0] * d, "sigma_ref": 1.0, "sigma_default": 0.1, "sigma_quantiles": [0.05, 0.1, 0.2],
             "motion_mean": [0.0] * d, "motion_std": [1.0] * d}
    return IFMDMRun(cfg=cfg, model=model, stats=stats, audio=audio)
