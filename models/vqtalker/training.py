"""VQTalker training: the motion tokenizer (inter-frame reconstruction, IF-MDM stage 1's
FramePairs and step), the k-means speech tokenizer, then the coarse-to-fine generator on the
frozen tokenizer's indices — all through edgeth.train.fit.

Generator samples: a window of T frames of one clip, a random source frame h of the same
clip (f_s and f_g come from it, as the portrait gives them at inference), the indices of
f_t - f_s, the frames' speech tokens and standardized controls, and a random layer r.

stage 1 = tokenizer, stage 2 = speech tokenizer + generator (None = all).
Shape legend: Tc clip frames, T window, Dm motion dims, Cg global dims, C controls.
"""
from __future__ import annotations

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
    n = len(fr)
    ctrl = (np.stack([clip.gt[k][:n] for k in CONTROL_KEYS], 1) if clip.gt else np.zeros((n, len(CONTROL_KEYS))))
    ctrl = (ctrl - np.asarray(stats["control_mean"])) / np.asarray(stats["control_std"])
    return {"f": torch.cat(f), "f_g": torch.cat(g), "speech": torch.from_numpy(speech.tokens(clip.audio, n)).int(),
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
    from edgeth.train import TrainConfig, fit, load_weights, save_weights

    data_dir, out = Path(data_dir), Path(out)
    if stage not in (None, 1, 2):
        raise InputError(f"--stage {stage} unknown", "use 1 (tokenizer) or 2 (speech tokens + generator)")
    cfg = resolve_config(out, preset, overrides)
    torch.manual_seed(seed)
    tok, gen, _ = build(cfg)
    prior = read_run_json(out) or {}
    stages, stats = list(prior.get("stages", [])), dict(prior.get("stats", {}))
    out.mkdir(parents=True, exist_ok=True)
    write_run_json(out, cfg, stats, stages)
    clips = load_corpus(data_dir, size=cfg.image_size, split=split)
    cap = (lambda n: min(n, max_steps)) if max_steps is not None else (lambda n: n)
    extra = {"family": "vqtalker", "preset": cfg.preset, "clips": len(clips)}
    if stage in (None, 1):
        n = cap(cfg.tokenizer_steps)
        tc = TrainConfig(max_steps=n, batch_size=cfg.tokenizer_batch, lr=cfg.tokenizer_lr, seed=seed,
                         warmup_steps=min(100, n // 10), ckpt_every=500)
        fit(tok, FramePairs(clips), tc, out, stage="tokenizer", device=device, resume=resume, extra_config=extra,
            progress=progress)
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
        n = cap(cfg.generator_steps)
        tc = TrainConfig(max_steps=n, batch_size=cfg.generator_batch, lr=cfg.generator_lr, seed=seed,
                         warmup_steps=min(100, n // 10), ckpt_every=500)
        fit(gen, data, tc, out, stage="generator", device=device, resume=resume, extra_config=extra, progress=progress)
        stages += ["speech", "generator"]
    write_run_json(out, cfg, stats, stages)
    return out
