"""Motion probe: measures mouth opening/width, blink and head pose from frames of any size.

Our analogue of SyncNet's LSE-C/D for the synthetic domain: a small CNN fitted on frames
rendered with random, independent per-frame motion over many random identities, with blur,
noise and rescale augmentation so that it reads blurry frames from a small generator too.
Fitting is deterministic (seeded) and takes ~40 s on one CPU core; the weights are
cached (safetensors) under $EDGETH_CACHE or ~/.cache/edgeth, keyed by a hash of the
renderer version and the probe config.

Shape legend: T frames, H/W any size, P = 48 (the probe's input size).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

OUTPUTS = ("mouth_open", "mouth_width", "blink", "yaw", "pitch", "roll")
SCALE = np.array([1.0, 1.0, 1.0, 10.0, 6.0, 5.0], np.float32)  # outputs are predicted divided by these


@dataclass(frozen=True)
class ProbeConfig:
    size: int = 48
    identities: int = 120
    frames_per_identity: int = 24
    render_sizes: tuple[int, ...] = (48, 64, 96)
    steps: int = 900
    batch: int = 64
    lr: float = 2e-3
    seed: int = 1234
    version: int = 1


def cache_dir() -> Path:
    return Path(os.environ.get("EDGETH_CACHE") or Path.home() / ".cache" / "edgeth")


def _key(cfg: ProbeConfig) -> str:
    from edgeth.data.synth import GENERATOR_VERSION

    blob = json.dumps({"probe": asdict(cfg), "generator": GENERATOR_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _net():
    import torch.nn as nn

    def block(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, 2, 1), nn.BatchNorm2d(o), nn.ReLU())

    return nn.Sequential(block(3, 24), block(24, 48), block(48, 64), block(64, 64), nn.Flatten(),
                         nn.Linear(64 * 9, 96), nn.ReLU(), nn.Linear(96, len(OUTPUTS)))


def to_probe_input(frames: np.ndarray, size: int = 48):
    """uint8 or float [T,H,W,3] -> float tensor [T,3,P,P] in [0,1] (antialiased resize)."""
    import torch
    import torch.nn.functional as F

    f = np.asarray(frames)
    x = torch.from_numpy(f.astype(np.float32) / (255.0 if f.dtype == np.uint8 else 1.0)).permute(0, 3, 1, 2)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1)


def _random_motion(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    u = lambda lo, hi: rng.uniform(lo, hi, n).astype(np.float32)  # noqa: E731
    mo = u(0, 1) * (rng.random(n) > 0.25)
    blink = np.where(rng.random(n) < 0.65, 0.0, u(0, 1)).astype(np.float32)
    return {"mouth_open": mo.astype(np.float32), "mouth_width": u(0, 1), "blink": blink, "yaw": u(-15, 15),
            "pitch": u(-9, 9), "roll": u(-7, 7), "gaze_x": u(-0.7, 0.7), "gaze_y": u(-0.45, 0.45)}


def _training_set(cfg: ProbeConfig):
    import torch

    from edgeth.data.render import render_frames, sample_identity

    rng = np.random.default_rng(cfg.seed)
    xs, ys = [], []
    for i in range(cfg.identities):
        ident = sample_identity(rng)
        m = _random_motion(rng, cfg.frames_per_identity)
        size = cfg.render_sizes[i % len(cfg.render_sizes)]
        xs.append(to_probe_input(render_frames(ident, m, size), cfg.size))
        ys.append(np.stack([m[k] for k in OUTPUTS], 1) / SCALE)
    return torch.cat(xs), torch.from_numpy(np.concatenate(ys).astype(np.float32))


def _augment(x, g):
    import torch
    import torch.nn.functional as F

    b = x.shape[0]
    sig = torch.rand(b, generator=g) * 1.3  # gaussian blur, sigma in pixels
    r = torch.arange(-3, 4, dtype=torch.float32)
    k = torch.exp(-0.5 * (r[None] / sig[:, None].clamp(min=1e-3)) ** 2)
    k = k / k.sum(1, keepdim=True)  # [b, 7]
    xx = x.reshape(1, b * 3, *x.shape[-2:])
    kh = k.repeat_interleave(3, 0)[:, None, None, :]
    xx = F.conv2d(F.pad(xx, (3, 3, 0, 0), mode="replicate"), kh, groups=b * 3)
    xx = F.conv2d(F.pad(xx, (0, 0, 3, 3), mode="replicate"), kh.transpose(2, 3), groups=b * 3)
    x = xx.reshape_as(x)
    gain = 1 + 0.15 * (torch.rand(b, 3, 1, 1, generator=g) - 0.5)
    x = x * gain + 0.03 * torch.randn(x.shape, generator=g)
    return x.clamp(0, 1)


def fit(cfg: ProbeConfig = ProbeConfig(), progress: bool = False):
    """Fit the probe (deterministic for a config). ~40 s on one core."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # reproducible on any machine, and immune to OpenMP oversubscription
    try:
        return _fit(cfg, progress)
    finally:
        torch.set_num_threads(threads)


def _fit(cfg: ProbeConfig, progress: bool):
    import torch
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    x, y = _training_set(cfg)
    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    g = torch.Generator().manual_seed(cfg.seed)
    net.train()
    for _ in tqdm(range(cfg.steps), desc="fit motion probe", disable=not progress):
        idx = torch.randint(0, x.shape[0], (cfg.batch,), generator=g)
        loss = torch.nn.functional.smooth_l1_loss(net(_augment(x[idx], g)), y[idx], beta=0.05)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


@lru_cache(maxsize=2)
def load(cfg: ProbeConfig = ProbeConfig(), progress: bool = False):
    """The fitted probe network (fits and caches it on first use)."""
    from safetensors.torch import load_file, save_file

    from edgeth.io_utils import atomic_path

    path = cache_dir() / f"motion-probe-{_key(cfg)}.safetensors"
    net = _net()
    if path.is_file():
        try:
            net.load_state_dict(load_file(str(path)))
            return net.eval()
        except Exception:  # a corrupt cache entry is refitted, not trusted
            path.unlink(missing_ok=True)
    net = fit(cfg, progress=progress)
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    return net


def measure(frames: np.ndarray, batch: int = 256) -> dict[str, np.ndarray]:
    """frames uint8/float [T,H,W,3] (any size) -> {mouth_open, mouth_width, blink, yaw, pitch, roll: [T]}."""
    import torch

    net = load()
    x = to_probe_input(frames)
    with torch.no_grad():
        out = torch.cat([net(x[i:i + batch]) for i in range(0, len(x), batch)]).numpy() * SCALE
    return {k: out[:, i] for i, k in enumerate(OUTPUTS)}


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.size < 2 or a.std() < 1e-9 or b.std() < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def lip_sync_score(frames: np.ndarray, gt_mouth_open: np.ndarray) -> float:
    """Pearson r between the probe's mouth opening on `frames` and the ground-truth opening."""
    n = min(len(frames), len(gt_mouth_open))
    return pearson(measure(frames[:n])["mouth_open"], gt_mouth_open[:n])
