"""Motion probe: measures mouth opening/width, blink and head pose from frames of any size.

Our analogue of SyncNet's LSE-C/D for the synthetic domain. Learned rather than analytic:
colour thresholds or landmark rules break on the soft, slightly off-colour frames a small
generator makes, while a CNN trained with blur/gain/noise/shift augmentation reads them.
Every frame is centre-cropped and resized to a canonical C x C (96); three small conv stems
look at the whole frame (at C/2, for pose), a mouth crop and an eyes crop (at full C: the
mouth's opening spans only a few pixels at 48 px), and a linear head joins them.

Training data: random identities (render.sample_identity) with random, independent
per-frame motion, rendered at 48-128 px. Fitting is deterministic (seeded data, batches
and augmentation, one thread); the weights are cached as safetensors under $EDGETH_CACHE
or ~/.cache/edgeth, keyed by a hash of the probe config, the generator version and the
source of render.py and probe.py (any change refits).

Shape legend: T frames, H/W any size, C canonical size (96), B batch.
"""
from __future__ import annotations

import fcntl
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
    canonical: int = 96  # every frame is resized to this square first
    identities: int = 720
    frames_per_identity: int = 4
    render_sizes: tuple[int, ...] = (48, 64, 96, 128)
    steps: int = 1200
    batch: int = 64
    lr: float = 2e-3
    seed: int = 1234
    version: int = 2


# Views of the canonical frame, as (top, bottom, left, right) fractions: where the mouth and
# the eyes can be for every identity and pose the renderer draws (with a margin for jitter).
MOUTH_BOX = (0.40625, 0.73958, 0.25, 0.75)
EYES_BOX = (0.23958, 0.48958, 0.16667, 0.83333)
JITTER = 2  # canonical pixels of random shift in training (generators are not pixel-exact)


def _box(b: tuple[float, float, float, float], c: int) -> tuple[int, int, int, int]:
    return round(b[0] * c), round(b[1] * c), round(b[2] * c), round(b[3] * c)


def cache_dir() -> Path:
    return Path(os.environ.get("EDGETH_CACHE") or Path.home() / ".cache" / "edgeth")


def _key(cfg: ProbeConfig) -> str:
    """Content hash: the config, the generator version, and the source of the renderer and this file."""
    from edgeth.data import render
    from edgeth.data.synth import GENERATOR_VERSION

    h = hashlib.sha256(json.dumps({"probe": asdict(cfg), "generator": GENERATOR_VERSION}, sort_keys=True).encode())
    for src in (render.__file__, __file__):
        h.update(Path(src).read_bytes())
    return h.hexdigest()[:16]


def _net(cfg: ProbeConfig):
    """Three small conv stems (whole frame at half size, mouth crop, eyes crop) and a joint head."""
    import torch
    import torch.nn as nn

    def stem(chans, flat):
        layers, i = [], 3
        for o in chans:
            layers += [nn.Conv2d(i, o, 3, 2, 1), nn.BatchNorm2d(o), nn.ReLU()]
            i = o
        return nn.Sequential(*layers, nn.Flatten(), nn.Linear(flat, 64), nn.ReLU())

    c = cfg.canonical
    mt, mb, ml, mr = _box(MOUTH_BOX, c)
    et, eb, el, er = _box(EYES_BOX, c)
    cells = lambda h, w, n: -(-h // 2**n) * -(-w // 2**n)  # noqa: E731 - stride-2 output size

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.whole = stem((16, 32, 48, 48), 48 * cells(c // 2, c // 2, 4))
            self.mouth = stem((16, 32, 48), 48 * cells(mb - mt, mr - ml, 3))
            self.eyes = stem((16, 32, 48), 48 * cells(eb - et, er - el, 3))
            self.head = nn.Linear(3 * 64, len(OUTPUTS))

        def forward(self, x, mouth, eyes):
            g = self.whole(torch.nn.functional.avg_pool2d(x, 2))
            return self.head(torch.cat([g, self.mouth(mouth), self.eyes(eyes)], 1))

    return Probe()


def _views(x, cfg: ProbeConfig, shifts=None):
    """x [B,3,C,C] -> (x, mouth crop, eyes crop); shifts [B,2] ints move each crop (training jitter)."""
    import torch

    c, j = cfg.canonical, JITTER
    xp = torch.nn.functional.pad(x, (j, j, j, j), mode="replicate")
    out = []
    for box in (MOUTH_BOX, EYES_BOX):
        t, b, l, r = _box(box, c)
        if shifts is None:
            out.append(x[:, :, t:b, l:r])
        else:
            out.append(torch.stack([xp[i, :, t + j + dy:b + j + dy, l + j + dx:r + j + dx]
                                    for i, (dy, dx) in enumerate(shifts.tolist())]))
    return (x, *out)


def to_probe_input(frames: np.ndarray, size: int = 96):
    """uint8 or float [T,H,W,3] (any size) -> float tensor [T,3,C,C] in [0,1] (centre square, antialiased resize)."""
    import torch
    import torch.nn.functional as F

    f = np.asarray(frames)
    h, w = f.shape[1:3]
    s = min(h, w)
    f = f[:, (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    x = torch.from_numpy(np.ascontiguousarray(f).astype(np.float32) / (255.0 if f.dtype == np.uint8 else 1.0))
    x = x.permute(0, 3, 1, 2)
    if s != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1)


def _random_motion(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    u = lambda lo, hi: rng.uniform(lo, hi, n).astype(np.float32)  # noqa: E731
    mo = u(0, 1) * (rng.random(n) > 0.25)
    blink = np.where(rng.random(n) < 0.65, 0.0, u(0, 1)).astype(np.float32)
    return {"mouth_open": mo.astype(np.float32), "mouth_width": u(0, 1), "blink": blink, "yaw": u(-15, 15),
            "pitch": u(-9, 9), "roll": u(-7, 7), "gaze_x": u(-0.7, 0.7), "gaze_y": u(-0.45, 0.45)}


def _training_set(cfg: ProbeConfig, progress: bool = False):
    """Random identities x random per-frame motion, rendered at mixed sizes: (uint8 [N,3,C,C], targets [N,6])."""
    import torch
    from tqdm import tqdm

    from edgeth.data.render import render_frames, sample_identity

    rng = np.random.default_rng(cfg.seed)
    xs, ys = [], []
    for i in tqdm(range(cfg.identities), desc="render probe set", disable=not progress):
        ident = sample_identity(rng)
        m = _random_motion(rng, cfg.frames_per_identity)
        size = cfg.render_sizes[i % len(cfg.render_sizes)]
        x = to_probe_input(render_frames(ident, m, size, supersample=2 if size <= 64 else 1), cfg.canonical)
        xs.append((x * 255).round().to(torch.uint8))
        ys.append(np.stack([m[k] for k in OUTPUTS], 1) / SCALE)
    return torch.cat(xs), torch.from_numpy(np.concatenate(ys).astype(np.float32))


def _augment(x, g):
    """Blur (random sigma), per-channel gain and noise: generated frames are soft and imperfect."""
    import torch
    import torch.nn.functional as F

    b = x.shape[0]
    sig = torch.rand(b, generator=g) * 2.0  # gaussian blur, sigma in canonical pixels
    r = torch.arange(-4, 5, dtype=torch.float32)
    k = torch.exp(-0.5 * (r[None] / sig[:, None].clamp(min=1e-3)) ** 2)
    k = k / k.sum(1, keepdim=True)  # [b, 9]
    xx = x.reshape(1, b * 3, *x.shape[-2:])
    kh = k.repeat_interleave(3, 0)[:, None, None, :]
    xx = F.conv2d(F.pad(xx, (4, 4, 0, 0), mode="replicate"), kh, groups=b * 3)
    xx = F.conv2d(F.pad(xx, (0, 0, 4, 4), mode="replicate"), kh.transpose(2, 3), groups=b * 3)
    x = xx.reshape_as(x)
    gain = 1 + 0.2 * (torch.rand(b, 3, 1, 1, generator=g) - 0.5)
    x = x * gain + 0.03 * torch.randn(x.shape, generator=g)
    return x.clamp(0, 1)


def fit(cfg: ProbeConfig = ProbeConfig(), progress: bool = False):
    """Fit the probe: deterministic for a config (one thread, seeded data, batches and augmentation)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # reproducible on any machine, and immune to OpenMP oversubscription
    try:
        with torch.enable_grad():  # the first measure() may come from inside a caller's no_grad block
            return _fit(cfg, progress)
    finally:
        torch.set_num_threads(threads)


def _fit(cfg: ProbeConfig, progress: bool):
    import torch
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    x, y = _training_set(cfg, progress)
    net = _net(cfg)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    g = torch.Generator().manual_seed(cfg.seed)
    net.train()
    for _ in tqdm(range(cfg.steps), desc="fit motion probe", disable=not progress):
        idx = torch.randint(0, x.shape[0], (cfg.batch,), generator=g)
        shifts = torch.randint(-JITTER, JITTER + 1, (cfg.batch, 2), generator=g)
        views = _views(_augment(x[idx].float() / 255, g), cfg, shifts)
        loss = torch.nn.functional.smooth_l1_loss(net(*views), y[idx], beta=0.05)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


@lru_cache(maxsize=2)
def load(cfg: ProbeConfig = ProbeConfig(), progress: bool = False):
    """The fitted probe network: from the cache, else fitted now and cached."""
    from safetensors.torch import load_file, save_file

    from edgeth.io_utils import atomic_path

    path = cache_dir() / f"motion-probe-{_key(cfg)}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:  # a second process waits for the first fit
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            net = _net(cfg)
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
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def measure(frames: np.ndarray, batch: int = 256, cfg: ProbeConfig = ProbeConfig()) -> dict[str, np.ndarray]:
    """frames uint8 [T,H,W,3] or float in [0, 1], any size -> {mouth_open, mouth_width, blink, yaw, pitch, roll}: [T].

    yaw/pitch/roll in degrees, the rest in [0, 1] (as in the synthetic ground truth).
    """
    import torch

    from edgeth.errors import InputError

    f = np.asarray(frames)
    if f.ndim != 4 or f.shape[-1] != 3 or min(f.shape[:3]) < 1:
        raise InputError(f"probe needs frames [T, H, W, 3] with T, H, W >= 1, got {f.shape}",
                         "pass RGB video frames, channels last")
    net = load(cfg)
    x = to_probe_input(frames, cfg.canonical)
    with torch.no_grad():
        out = torch.cat([net(*_views(x[i:i + batch], cfg)) for i in range(0, len(x), batch)]).numpy() * SCALE
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
