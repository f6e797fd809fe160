"""MDCF training, all through edgeth.train.fit: TPC phase one (FDE, Eq. 5), phase two (LMAE
with MSE + IGC + KL, Eq. 9; the FDE frozen), phase three (latent video diffusion + pose/blink
generator, §3.3). Ablations of Table 5: `no_igc` (lambda_IGC = 0) and `end_to_end` (w/o TPC:
FDE + LMAE trained together from scratch for the same total step budget, fde + lmae steps).

Phase one and two sample (source, driving) frame pairs of one clip (IF-MDM's FramePairs);
phase three samples windows of T frames with their 640 T audio samples, ground-truth pose and
blink rho and a random source frame of the same clip.

Shape legend: T window frames, S image size, P pose/blink dims, Tc frames of a clip.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from edgeth.audio import fit_length
from edgeth.errors import InputError
from edgeth.models.ifmdm.training import FramePairs, _is_main, _load_clips
from edgeth.models.mdcf.config import POSE_KEYS, POSE_SCALE, MDCFConfig, preset as get_preset
from edgeth.models.mdcf.run import MDCF, PHASES, load_weights_into, read_run_json, write_run_json


def pose_of(gt: dict[str, np.ndarray] | None, n: int) -> np.ndarray:
    """rho [n, P] (scaled yaw, pitch, roll, blink) from a clip's ground truth (zeros without it)."""
    if not gt:
        return np.zeros((n, len(POSE_KEYS)), np.float32)
    return np.stack([np.asarray(gt[k][:n], np.float32) / s for k, s in zip(POSE_KEYS, POSE_SCALE)], 1)


class LatentWindows(Dataset):
    """Windows of T frames [T, 3, S, S] in [0, 1] + audio [640 T] + rho [T, P] + a source frame of the clip."""

    def __init__(self, clips: Sequence[Any], window: int, spf: int = 640, windows_per_clip: int = 64):
        keep = [c for c in clips if c.n_frames >= window]
        if not keep:
            raise InputError(f"no clip has {window} frames (one diffusion window)", "use longer clips (--seconds)")
        self.frames = [torch.from_numpy(np.ascontiguousarray(c.frames)) for c in keep]
        self.audios = [torch.from_numpy(fit_length(np.asarray(c.audio, np.float32), c.n_frames * spf)) for c in keep]
        self.rhos = [torch.from_numpy(pose_of(c.gt, c.n_frames)) for c in keep]
        self.window, self.spf, self.per = window, spf, windows_per_clip

    def __len__(self) -> int:
        return len(self.frames) * self.per

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        k = i % len(self.frames)
        fr, t = self.frames[k], self.window
        s = int(torch.randint(0, fr.shape[0] - t + 1, ()).item())
        src = int(torch.randint(0, fr.shape[0], ()).item())
        img = lambda x: x.permute(0, 3, 1, 2).float() / 255.0  # noqa: E731
        return {"source": img(fr[src:src + 1])[0], "frames": img(fr[s:s + t]),
                "audio": self.audios[k][s * self.spf:(s + t) * self.spf], "rho": self.rhos[k][s:s + t]}


@torch.no_grad()
def diffusion_stats(model: MDCF, clips: Sequence[Any], spf: int = 640, frames_per_clip: int = 32) -> dict[str, Any]:
    """Fixed before phase three: mel mean/std and the per-channel latent scale (RMS of mu - origin)."""
    enc = model.diffusion.audio_encoder
    mels = np.concatenate([enc.frontend(torch.from_numpy(fit_length(np.asarray(c.audio, np.float32),
                                                                     c.n_frames * spf))[None])[0].numpy() for c in clips])
    mus = []
    for c in clips:
        fr = torch.from_numpy(np.ascontiguousarray(c.frames)).permute(0, 3, 1, 2).float() / 255.0
        idx = np.linspace(0, len(fr) - 1, min(frames_per_clip, len(fr))).astype(int)
        mu, origin, _ = model.diffusion.latents(fr[:1], fr[idx][None])
        mus.append(mu[0] - origin)
    rel = torch.cat(mus)  # [n, Z, h, h]
    scale = rel.pow(2).mean(dim=(0, 2, 3)).sqrt().clamp_min(1e-4)
    return {"mel_mean": mels.mean(0).astype(float).tolist(), "mel_std": np.maximum(mels.std(0), 1e-3).astype(float).tolist(),
            "latent_scale": scale.tolist()}


def resolve_config(out: Path, preset: str, overrides: dict[str, Any] | None, mode: str) -> MDCFConfig:
    d = read_run_json(out)
    if d is not None:
        if d.get("preset") != preset:
            raise InputError(f"{out} holds a {d.get('preset')!r} run, not {preset!r}",
                             "pass the same --preset to resume, or a fresh --out directory")
        if d.get("mode", "tpc") != mode and "lmae" in d.get("phases", []):
            raise InputError(f"{out} was trained in mode {d.get('mode')!r}, not {mode!r}",
                             "use a fresh --out directory for each ablation")
        return MDCFConfig.from_json(d["config"])
    cfg = get_preset(preset)
    return cfg.replace(**overrides) if overrides else cfg


def _phases(phase: str | None, end_to_end: bool) -> list[str]:
    if phase not in (None, "all", *PHASES):
        raise InputError(f"--phase {phase} unknown", f"use one of: {', '.join(PHASES)}, all")
    if end_to_end and phase == "fde":
        raise InputError("--end-to-end has no separate FDE phase", "use --phase lmae (FDE and LMAE train together)")
    todo = list(PHASES) if phase in (None, "all") else [phase]
    return [p for p in todo if not (end_to_end and p == "fde")]


def train(data_dir: Path, out: Path, *, preset: str = "tiny", phase: str | None = None, max_steps: int | None = None,
          device: str | None = None, seed: int = 0, resume: bool = True, progress: bool = True,
          overrides: dict[str, Any] | None = None, split: str | None = "train", no_igc: bool = False,
          end_to_end: bool = False) -> Path:
    """Train the phases asked for (default all three, in order) into RUN/ = out; returns out."""
    from edgeth.audio import AudioConfig
    from edgeth.train import TrainConfig, fit

    data_dir, out = Path(data_dir), Path(out)
    if not data_dir.exists():
        raise InputError(f"data directory {data_dir} does not exist", "generate one: edgeth data synth DIR")
    mode = "e2e" if end_to_end else "no-igc" if no_igc else "tpc"
    todo = _phases(phase, end_to_end)
    cfg = resolve_config(out, preset, overrides, mode)
    audio = AudioConfig()
    torch.manual_seed(seed)
    model = MDCF(cfg, audio, mode)
    prior = read_run_json(out) or {}
    done, stats = list(prior.get("phases", [])), dict(prior.get("stats", {}))
    if _is_main():
        out.mkdir(parents=True, exist_ok=True)
        write_run_json(out, cfg, audio, stats, done, mode)
    clips = _load_clips(data_dir, cfg.fde.image_size, split)
    cap = (lambda n: min(n, max_steps)) if max_steps is not None else (lambda n: n)
    extra = {"family": "mdcf", "preset": cfg.preset, "clips": len(clips), "mode": mode}

    def tc(steps: int, batch: int) -> TrainConfig:
        return TrainConfig(max_steps=cap(steps), batch_size=batch, lr=cfg.lr, seed=seed,
                           warmup_steps=min(100, cap(steps) // 10), ckpt_every=500)

    def need(name: str) -> None:
        if name not in load_weights_into(model, out, diffusion=False):
            raise InputError(f"{out} has no {name} weights",
                             f"train it first: edgeth train mdcf --data {data_dir} --out {out} --phase {name}")

    if "fde" in todo:
        fit(model.fde, FramePairs(clips), tc(cfg.fde_steps, cfg.batch), out, stage="fde", device=device,
            resume=resume, extra_config=extra, progress=progress)
        done.append("fde")
    if "lmae" in todo:
        if mode != "e2e":
            need("fde")
        steps = cfg.lmae_steps + (cfg.fde_steps if mode == "e2e" else 0)  # the same total budget as TPC
        fit(model.cascade(mode), FramePairs(clips), tc(steps, cfg.batch), out, stage="lmae", device=device,
            resume=resume, extra_config=extra, progress=progress)
        done.append("lmae")
    if "diffusion" in todo:
        need("lmae")
        dif = model.diffusion.attach(model.fde, model.lmae)
        stats = diffusion_stats(model, clips)
        with torch.no_grad():
            dif.audio_encoder.mel_mean.copy_(torch.tensor(stats["mel_mean"]))
            dif.audio_encoder.mel_std.copy_(torch.tensor(stats["mel_std"]))
            dif.latent_scale.copy_(torch.tensor(stats["latent_scale"]))
        fit(dif, LatentWindows(clips, cfg.diffusion.window), tc(cfg.diffusion_steps, cfg.window_batch), out,
            stage="diffusion", device=device, resume=resume, extra_config=extra, progress=progress)
        done.append("diffusion")
    if _is_main():
        write_run_json(out, cfg, audio, stats, sorted(set(done)), mode)
    return out
