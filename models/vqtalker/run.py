"""A VQTalker run directory (RUN/) and the in-memory model it loads into.

RUN/vqtalker.json          family, preset, full config, control statistics, stages done
RUN/tokenizer.safetensors  encoder + GRFSQ + renderer (edgeth.train.fit stage "tokenizer")
RUN/speech.safetensors     k-means speech tokenizer: centroids, feature mean / std
RUN/generator.safetensors  coarse-to-fine token generator (fit stage "generator")
RUN/controls.safetensors   audio-conditioned pose / gaze / blink generator (fit stage "controls");
                           optional: a run trained before it existed loads with `controls`
                           None, exports no control_generator program, and its driver falls
                           back to the random-walk prior (a one-line note on stderr says so
                           and how to train it: `--stage 3`, seconds at tiny)
RUN/{tokenizer,generator,controls}.* optimizer state, stage JSON and logs (resume)

Never unpickles: weights are safetensors, configs JSON.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from edgeth.errors import InputError
from edgeth.io_utils import write_json
from edgeth.models.vqtalker.config import CONTROL_KEYS, VQTalkerConfig
from edgeth.models.vqtalker.controls import SpeechControls
from edgeth.models.vqtalker.generator import TokenGenerator
from edgeth.models.vqtalker.speech import SpeechTokenizerProgram
from edgeth.models.vqtalker.tokenizer import MotionTokenizer

RUN_JSON = "vqtalker.json"
RUN_VERSION = 1
PARTS = ("tokenizer", "speech", "generator")  # required; "controls" is optional (see above)


@dataclass
class VQTalkerRun:
    cfg: VQTalkerConfig
    tokenizer: MotionTokenizer
    generator: TokenGenerator
    speech: SpeechTokenizerProgram
    stats: dict[str, Any] = field(default_factory=dict)  # control mean / std (CONTROL_KEYS order)
    run_dir: Path | None = None
    controls: SpeechControls | None = None  # None: a run trained before the control generator


def speech_program(cfg: VQTalkerConfig) -> SpeechTokenizerProgram:
    p = 4 * 80
    return SpeechTokenizerProgram(torch.zeros(cfg.speech_vocab, p), torch.zeros(p), torch.ones(p))


def build(cfg: VQTalkerConfig) -> tuple[MotionTokenizer, TokenGenerator, SpeechTokenizerProgram, SpeechControls]:
    return MotionTokenizer(cfg), TokenGenerator(cfg), speech_program(cfg), SpeechControls(cfg)


def default_stats() -> dict[str, Any]:
    return {"control_mean": [0.0] * len(CONTROL_KEYS), "control_std": [1.0] * len(CONTROL_KEYS)}


def write_run_json(run_dir: Path, cfg: VQTalkerConfig, stats: dict[str, Any], stages: list[str]) -> None:
    write_json(Path(run_dir) / RUN_JSON, {"family": "vqtalker", "version": RUN_VERSION, "preset": cfg.preset,
                                          "config": cfg.to_json(), "bitrate_bps": cfg.bitrate(),
                                          "stats": stats, "stages": sorted(set(stages))})


def read_run_json(run_dir: Path) -> dict[str, Any] | None:
    p = Path(run_dir) / RUN_JSON
    if not p.is_file():
        return None
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{p} is not valid JSON ({e})", "re-run `edgeth train vqtalker` into a fresh --out") from None
    if not isinstance(d, dict) or d.get("family") != "vqtalker":
        raise InputError(f"{p} is not a VQTalker run", "pass a VQTalker run directory")
    return d


def load_run(run_dir: str | Path, device: str = "cpu", require: tuple[str, ...] = PARTS) -> VQTalkerRun:
    from edgeth.train import load_weights

    run_dir = Path(run_dir)
    d = read_run_json(run_dir)
    if d is None:
        raise InputError(f"{run_dir} has no {RUN_JSON}", "pass the --out folder of `edgeth train vqtalker`")
    try:
        cfg = VQTalkerConfig.from_json(d["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{run_dir / RUN_JSON} has an invalid config ({e})", "re-train into a fresh directory") from None
    tok, gen, speech, controls = build(cfg)
    for name, module in zip(PARTS, (tok, speech, gen)):
        path = run_dir / f"{name}.safetensors"
        if path.is_file():
            load_weights(module, path)
        elif name in require:
            raise InputError(f"{run_dir} has no {name} weights ({path.name})",
                             f"finish training: edgeth train vqtalker --data DATA --out {run_dir}")
    if (run_dir / "controls.safetensors").is_file():
        load_weights(controls, run_dir / "controls.safetensors")
    else:
        controls = None
        if "generator" in require:
            print(f"note: {run_dir} has no control generator (controls.safetensors): head pose / gaze / blink come "
                  f"from the random-walk prior; train it: edgeth train vqtalker --data DATA --out {run_dir} --stage 3",
                  file=sys.stderr)
    for m in (tok, gen, speech, controls):
        if m is not None:
            m.to(device).eval()
    return VQTalkerRun(cfg, tok, gen, speech, {**default_stats(), **d.get("stats", {})}, run_dir, controls)


def fresh_run(cfg: VQTalkerConfig, seed: int = 0) -> VQTalkerRun:
    torch.manual_seed(seed)
    tok, gen, speech, controls = build(cfg)
    return VQTalkerRun(cfg, tok.eval(), gen.eval(), speech.eval(), default_stats(), controls=controls.eval())
