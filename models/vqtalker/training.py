"""VQTalker training: the motion tokenizer (inter-frame reconstruction, IF-MDM stage 1's
FramePairs and step), the k-means speech tokenizer, then the coarse-to-fine generator on the
frozen tokenizer's indices, then the audio-conditioned pose / gaze / blink generator
(controls.py) — all through edgeth.train.fit.

Generator samples: a window of T frames of one clip, a random source frame h of the same
clip (f_s and f_g come from it, as the portrait gives them at inference), the indices of
f_t - f_s, the frames' speech tokens and standardized controls, and a random layer r.

Control samples: a window of T frames of one clip, its speech tokens and standardized
ground-truth controls (ControlWindows).

stage 1 = tokenizer, stage 2 = speech tokenizer + generator, stage 3 = control generator
(None = all; stage 3 alone adds the control generator to a run trained before it existed).
Shape legend: Tc clip frames, T window, Dm motion dims, Cg global dims, C controls.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from edgeth.errors import InputError
from edgeth.models.vqtalker.config import CONTROL_KEYS, VQTalkerConfig, preset as get_preset
from edgeth.models.vqtalker.run import build, default_stats, read_run_json, write_run_json


class TokenWindows(Dataset):
    def __init__(self, clips: list[dict[str, torch.Tensor]], quantizer, window: int, per_clip: int = 64):
        self.clips = [c for c in clips if c["f"].shape[0] >= window]
        if not self.clips:
            raise InputError(f"no clip has {window} frames (one generator window)", "use longer clips (--seconds)")
        self.q, self.window, self.per = quantizer.eval(), window, per_clip

    def __len__(self) -> int:
        return len(self.clips) * self.per

    @torch.no_grad()
    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        c = self.clips[i % len(self.clips)]
        n, t = c["f"].shape[0], self.window
        s = int(torch.randint(0, n - t + 1, ()))
        h = int(torch.randint(0, n, ()))
        return {"speech": c["speech"][s:s + t], "f_g": c["f_g"][h], "controls": c["controls"][s:s + t],
                "tokens": self.q.indices(c["f"][s:s + t] - c["f"][h]).int(),
                "layer": torch.randint(0, self.q.cfg.residual, ())}


class ControlWindows(Dataset):
    """Random windows of (speech tokens [T], standardized controls [T, C]) of clips with labels."""

    def __init__(self, clips: list[dict[str, torch.Tensor]], window: int, per_clip: int = 64):
        self.clips = [c for c in clips if c["speech"].shape[0] >= window]
        if not self.clips:
            raise InputError(f"no labelled clip has {window} frames (one window)", "use longer clips (--seconds)")
        self.window, self.per = window, per_clip

    def __len__(self) -> int:
        return len(self.clips) * self.per

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        c = self.clips[i % len(self.clips)]
        s = int(torch.randint(0, c["speech"].shape[0] - self.window + 1, ()))
        return {"speech": c["speech"][s:s + self.window], "controls": c["controls"][s:s + self.window]}


def control_stats(clips) -> dict[str, Any]:
    if not all(c.gt for c in clips):
        return default_stats()  # real clips carry no pose/gaze/blink labels: zero controls
    allc = np.concatenate([np.stack([c.gt[k] for k in CONTROL_KEYS], 1) for c in clips])
    return {"control_mean": allc.mean(0).astype(float).tolist(),
            "control_std": np.maximum(allc.std(0), 1e-3).astype(float).tolist()}


@torch.no_grad()
def clip_tensors(tok, speech, clip, stats: dict[str, Any], batch: int = 64) -> dict[str, torch.Tensor]:
    """Per-frame motion features, global features, speech tokens and standardized controls of a clip."""
    fr = torch.from_numpy(np.ascontiguousarray(clip.frames)).permute(0, 3, 1, 2).float() / 255
    f, g = [], []
    for i in range(0, len(fr), batch):
        feats, f_g, m = tok.encode(fr[i:i + batch])
        f.append(m)
        g.append(f_g)
    return {"f": torch.cat(f), "f_g": torch.cat(g), **clip_controls(speech, clip, stats, len(fr))}


def clip_controls(speech, clip, stats: dict[str, Any], n: int) -> dict[str, torch.Tensor]:
    """A clip's speech tokens int32 [n] and standardized controls [n, C] (zeros without labels)."""
    ctrl = (np.stack([clip.gt[k][:n] for k in CONTROL_KEYS], 1) if clip.gt else np.zeros((n, len(CONTROL_KEYS))))
    ctrl = (ctrl - np.asarray(stats["control_mean"])) / np.asarray(stats["control_std"])
    return {"speech": torch.from_numpy(speech.tokens(clip.audio, n)).int(),
            "controls": torch.from_numpy(ctrl.astype(np.float32))}


def resolve_config(out: Path, preset: str, overrides: dict[str, Any] | None) -> VQTalkerConfig:
    """The run's config: an existing run JSON wins (resume); a different preset is an error."""
    from edgeth.models.common.run_json import resume_or_preset

    return resume_or_preset(out, preset, overrides, read_run_json, VQTalkerConfig.from_json, get_preset)


def train(data_dir: Path, out: Path, *, preset: str = "tiny", stage: int | None = None, max_steps: int | None = None,
          device: str | None = None, seed: int = 0, resume: bool = True, progress: bool = True,
          overrides: dict[str, Any] | None = None, split: str | None = "train") -> Path:
    from edgeth.data.dataset import load_corpus
    from edgeth.models.ifmdm.training import FramePairs
    from edgeth.models.vqtalker.speech import KMeansSpeechTokenizer
    from edgeth.train import fit, load_weights, save_weights

    data_dir, out = Path(data_dir), Path(out)
    if stage not in (None, 1, 2, 3):
        raise InputError(f"--stage {stage} unknown",
                         "use 1 (tokenizer), 2 (speech tokens + generator) or 3 (pose / gaze / blink generator)")
    cfg = resolve_config(out, preset, overrides)
    torch.manual_seed(seed)
    tok, gen, _, controls = build(cfg)
    prior = read_run_json(out) or {}
    stages, stats = list(prior.get("stages", [])), dict(prior.get("stats", {}))
    out.mkdir(parents=True, exist_ok=True)
    write_run_json(out, cfg, stats, stages)
    clips = load_corpus(data_dir, size=cfg.image_size, split=split)
    cap = (lambda n: min(n, max_steps)) if max_steps is not None else (lambda n: n)
    extra = {"family": "vqtalker", "preset": cfg.preset, "clips": len(clips)}
    fit_kw = {"device": device, "resume": resume, "extra_config": extra, "progress": progress}
    if stage in (None, 1):
        tc = train_config(cap(cfg.tokenizer_steps), cfg.tokenizer_batch, cfg.tokenizer_lr, seed)
        fit(tok, FramePairs(clips), tc, out, stage="tokenizer", **fit_kw)
        stages.append("tokenizer")
    if stage in (None, 2):
        if not (out / "tokenizer.safetensors").is_file():
            raise InputError(f"{out} has no tokenizer weights", f"train stage 1 first: edgeth train vqtalker "
                             f"--data {data_dir} --out {out} --stage 1")
        load_weights(tok, out / "tokenizer.safetensors")
        tok.cpu().eval()
        speech = KMeansSpeechTokenizer.fit([c.audio for c in clips], cfg.speech_vocab, cfg.kmeans_iters, seed)
        save_weights(speech.program, out / "speech.safetensors", {"vocab": speech.vocab})
        stats = control_stats(clips)
        data = TokenWindows([clip_tensors(tok, speech, c, stats) for c in clips], tok.quantizer, cfg.window)
        tc = train_config(cap(cfg.generator_steps), cfg.generator_batch, cfg.generator_lr, seed)
        fit(gen, data, tc, out, stage="generator", **fit_kw)
        stages += ["speech", "generator"]
    if stage == 3 or (stage is None and any(c.gt for c in clips)):
        stats = stats if "control_mean" in stats else control_stats(clips)  # the generator's, when trained
        train_controls(controls, clips, stats, cfg, out, cap(cfg.controls_steps), seed, fit_kw)
        stages.append("controls")
    elif stage is None:
        print("note: no clip carries pose / gaze / blink labels: no control generator trained (the driver uses "
              "the random-walk prior or a reference clip's controls)", file=sys.stderr)
    write_run_json(out, cfg, stats, stages)
    return out


def train_config(n: int, batch: int, lr: float, seed: int):
    from edgeth.train import TrainConfig

    return TrainConfig(max_steps=n, batch_size=batch, lr=lr, seed=seed, warmup_steps=min(100, n // 10), ckpt_every=500)


def train_controls(controls, clips, stats: dict[str, Any], cfg: VQTalkerConfig, out: Path, steps: int, seed: int,
                   fit_kw: dict[str, Any]) -> None:
    """Stage 3: the pose / gaze / blink generator on the clips' speech tokens and ground truth,
    standardized with `stats` (the token generator's)."""
    from edgeth.models.vqtalker.run import speech_program
    from edgeth.models.vqtalker.speech import KMeansSpeechTokenizer
    from edgeth.train import fit, load_weights

    if not (out / "speech.safetensors").is_file():
        raise InputError(f"{out} has no speech tokenizer (speech.safetensors)",
                         f"train stage 2 first: edgeth train vqtalker --data DATA --out {out} --stage 2")
    program = speech_program(cfg)
    load_weights(program, out / "speech.safetensors")
    speech = KMeansSpeechTokenizer(program.eval())
    data = ControlWindows([clip_controls(speech, c, stats, c.n_frames) for c in clips if c.gt], cfg.window)
    fit(controls, data, train_config(steps, cfg.controls_batch, cfg.controls_lr, seed), out, stage="controls",
        **fit_kw)
