"""The embedded default data: a procedural synthetic talking-head corpus.

Each clip: an identity (render.Identity) speaking synthetic speech (speech.speak, a
source-filter synthesizer whose phonemes drive visemes), with smooth head pose, gaze
saccades and blinks. Written like a real dataset:

  OUT/clip_0000.mp4   25 fps H.264 (+ AAC audio track)
  OUT/clip_0000.wav   16 kHz mono
  OUT/clip_0000.json  per-frame ground truth (render.MOTION_KEYS) + identity + voice
  OUT/clip_0000.npz   lossless frames (with --lossless)
  OUT/manifest.json   generator version, seed, size, fps, split (train/val by identity)

Every clip is seeded from (seed, clip index), so a clip is identical whatever else is made.
Shape legend: T frames (25·seconds), S samples (640·T), H = W = size.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgeth.data.render import MOTION_KEYS, Identity, neutral_motion, render_frames, sample_identity
from edgeth.data.speech import sample_voice, speak
from edgeth.errors import InputError
from edgeth.io_utils import atomic_path, write_json

GENERATOR = "edgeth-synth"
GENERATOR_VERSION = 1
FPS = 25


def _smooth_walk(rng: np.random.Generator, n: int, amp: float, sigma: float) -> np.ndarray:
    pad = int(4 * sigma) + 1
    x = rng.standard_normal(n + 2 * pad)
    k = np.exp(-0.5 * (np.arange(-pad, pad + 1) / sigma) ** 2)
    y = np.convolve(x, k / k.sum(), "same")[pad:pad + n]
    return (y / (y.std() + 1e-6) * amp).astype(np.float32)


def sample_motion(rng: np.random.Generator, n_frames: int, speech: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-frame ground truth: mouth from the speech's visemes; head pose, gaze, blinks independent."""
    m = neutral_motion(n_frames)
    m["mouth_open"][:] = speech["mouth_open"]
    m["mouth_width"][:] = speech["mouth_width"]
    m["yaw"][:] = _smooth_walk(rng, n_frames, rng.uniform(3, 7), 10)
    m["pitch"][:] = _smooth_walk(rng, n_frames, rng.uniform(1.5, 4), 12)
    m["roll"][:] = _smooth_walk(rng, n_frames, rng.uniform(1, 3), 14)
    # gaze: fixations with quick saccades (piecewise constant, lightly smoothed)
    for key in ("gaze_x", "gaze_y"):
        g, t = np.zeros(n_frames, np.float32), 0
        while t < n_frames:
            dur = int(rng.integers(12, 50))
            g[t:t + dur] = rng.uniform(-0.7, 0.7) * (1.0 if key == "gaze_x" else 0.6)
            t += dur
        m[key][:] = np.convolve(g, np.ones(3) / 3, "same")
    # blinks: every 1.5–4.5 s, ~0.2 s, triangular close/open
    t = int(rng.integers(5, 40))
    while t < n_frames:
        for i, v in enumerate((0.5, 1.0, 1.0, 0.5)):
            if t + i < n_frames:
                m["blink"][t + i] = v
        t += int(rng.integers(38, 112))
    return m


def _clip_rng(seed: int, index: int, what: str) -> np.random.Generator:
    tag = {"identity": 1, "clip": 2, "sample": 3}[what]
    return np.random.default_rng(np.random.SeedSequence([int(seed), tag, int(index)]))


def make_clip(identity: Identity, rng: np.random.Generator, seconds: float, size: int) -> dict[str, Any]:
    """-> {frames uint8 [T,H,W,3], audio float32 [S], gt {key: [T]}, voice}."""
    n = int(round(seconds * FPS))
    voice = sample_voice(rng)
    audio, tracks, _ = speak(rng, n, voice, fps=FPS)
    gt = sample_motion(rng, n, tracks)
    frames = render_frames(identity, gt, size, supersample=2 if size <= 96 else 1)
    return {"frames": frames, "audio": audio, "gt": gt, "voice": voice.to_json()}


def _split(n_ids: int, val_fraction: float) -> list[str]:
    n_val = max(1, int(round(n_ids * val_fraction))) if n_ids > 1 else 0
    return ["train"] * (n_ids - n_val) + ["val"] * n_val


def generate_corpus(out, clips: int = 16, seconds: float = 4.0, size: int = 128, seed: int = 0,
                    lossless: bool = False, val_fraction: float = 0.25, progress: bool = True,
                    video: bool = True) -> dict[str, Any]:
    """Write the corpus into `out` (atomically: a temp folder renamed at the end). -> the manifest.
    video=False (with lossless=True) skips the mp4s: no video encoder needed (GPU machines)."""
    from edgeth.data.video import write_mp4, write_wav

    if clips < 2:
        raise InputError(f"--clips must be ≥ 2 (got {clips})", "a train and a val identity are needed")
    if seconds <= 0 or size < 16:
        raise InputError(f"bad corpus shape: seconds={seconds}, size={size}", "use seconds > 0 and size ≥ 16")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").exists():
        raise InputError(f"{out} exists and is not a corpus", "choose an empty or new folder")
    n_ids = max(2, clips // 2)  # two clips per identity on average
    splits = _split(n_ids, val_fraction)
    identities = [sample_identity(_clip_rng(seed, i, "identity")) for i in range(n_ids)]
    entries = []
    from tqdm import tqdm

    with atomic_path(out, is_dir=True) as tmp:
        for i in tqdm(range(clips), desc="synth clips", unit="clip", disable=not progress):
            ident = i % n_ids
            c = make_clip(identities[ident], _clip_rng(seed, i, "clip"), seconds, size)
            name = f"clip_{i:04d}"
            if video or not lossless:
                write_mp4(tmp / f"{name}.mp4", c["frames"], FPS, c["audio"], quality="compact")
            write_wav(tmp / f"{name}.wav", c["audio"])
            if lossless:
                np.savez_compressed(tmp / f"{name}.npz", frames=c["frames"])
            write_json(tmp / f"{name}.json", {
                "identity": f"id_{ident:03d}", "identity_params": identities[ident].to_json(), "voice": c["voice"],
                "fps": FPS, "frames": len(c["frames"]), "gt": {k: c["gt"][k].round(6).tolist() for k in MOTION_KEYS},
            })
            entries.append({"name": name, "identity": f"id_{ident:03d}", "split": splits[ident],
                            "frames": int(len(c["frames"])), "lossless": bool(lossless)})
        manifest = {
            "generator": GENERATOR, "generator_version": GENERATOR_VERSION, "seed": int(seed), "size": int(size),
            "fps": FPS, "sample_rate": 16000, "seconds": float(seconds), "clips": entries,
            "splits": {s: sorted({e["identity"] for e in entries if e["split"] == s}) for s in ("train", "val")},
        }
        write_json(tmp / "manifest.json", manifest)
    return manifest


def sample_inputs(out_dir, size: int = 64, seconds: float = 2.0, seed: int = 0) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """A held-out identity's portrait (neutral first frame, PNG) + a speech wav + its ground truth.

    The identity comes from a seed stream no corpus uses, so it is never a training identity.
    """
    from edgeth.data.video import write_png, write_wav

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ident = sample_identity(_clip_rng(seed, 10_000, "sample"))
    c = make_clip(ident, _clip_rng(seed, 10_001, "sample"), seconds, size)
    portrait = render_frames(ident, neutral_motion(1), size, supersample=2 if size <= 96 else 1)[0]
    png, wav = out_dir / f"portrait_{seed}_{size}.png", out_dir / f"speech_{seed}.wav"
    write_png(png, portrait)
    write_wav(wav, c["audio"])
    return png, wav, c["gt"]


def read_manifest(root) -> dict[str, Any] | None:
    p = Path(root) / "manifest.json"
    if not p.is_file():
        return None
    try:
        m = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{p} is not valid JSON ({e})", "regenerate the corpus with `edgeth data synth`") from None
    return m if m.get("generator") == GENERATOR else None
