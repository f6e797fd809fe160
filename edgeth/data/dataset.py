"""Loading clips for training and evaluation: the synthetic corpus or a folder of real clips.

Clip: frames uint8 [T,H,W,3], audio float32 [S = 640·T] at 16 kHz, fps, per-frame ground
truth (synthetic only). Audio is trimmed/padded to exactly 640·T samples so that audio
features and frames align (4 mel hops per frame).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeth.audio import fit_length
from edgeth.data.synth import FPS, read_manifest  # every model runs at 25 fps: 640 samples per frame
from edgeth.data.video import SAMPLE_RATE, center_crop_resize, read_audio, read_video
from edgeth.errors import InputError


@dataclass
class Clip:
    name: str
    identity: str
    frames: np.ndarray  # uint8 [T, H, W, 3]
    audio: np.ndarray  # float32 [640·T] at 16 kHz
    fps: float = 25.0
    gt: dict[str, np.ndarray] | None = None  # per-frame ground truth (synthetic only)
    split: str | None = None

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])


def retime(frames: np.ndarray, fps: float, target: float = FPS) -> np.ndarray:
    """Resample a frame sequence to `target` fps: each output frame is the source frame on screen
    at its centre time (frames dropped or repeated, never blended)."""
    if abs(fps - target) < 1e-3:
        return frames
    n = int(np.floor(len(frames) * target / fps + 1e-6))
    idx = np.minimum(np.floor((np.arange(n) + 0.5) * fps / target).astype(int), len(frames) - 1)
    return frames[idx]


def align(frames: np.ndarray, audio: np.ndarray, fps: float, size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """-> (frames at 25 fps, resized to size with a centre crop; audio of exactly 640·T samples)."""
    frames = retime(frames, fps)
    if size is not None and frames.shape[1:3] != (size, size):
        frames = np.stack([center_crop_resize(f, size) for f in frames])
    return frames, fit_length(audio, frames.shape[0] * SAMPLE_RATE // FPS)


def _load_synthetic(root: Path, manifest: dict, size: int | None, split: str | None, progress: bool) -> list[Clip]:
    from tqdm import tqdm

    clips = []
    entries = [e for e in manifest["clips"] if split is None or e["split"] == split]
    for e in tqdm(entries, desc="load clips", unit="clip", disable=not progress):
        name = e["name"]
        npz = root / f"{name}.npz"
        if npz.is_file():
            with np.load(npz) as z:
                frames, fps = z["frames"], float(manifest["fps"])
        else:
            frames, fps = read_video(root / f"{name}.mp4")
        audio = read_audio(root / f"{name}.wav")
        meta = json.loads((root / f"{name}.json").read_text())
        gt = {k: np.asarray(v, np.float32) for k, v in meta["gt"].items()}
        t = min(len(frames), len(next(iter(gt.values()))))
        frames, audio = align(frames[:t], audio, fps, size)
        clips.append(Clip(name, e["identity"], frames, audio, fps, {k: v[:t] for k, v in gt.items()}, e["split"]))
    return clips


# Small decoded synthetic corpora, keyed by (folder, manifest inode + mtime, size, split): a
# corpus is written atomically (a new manifest on every write), so the key changes when it
# does. Callers get copies, so mutating a returned clip never touches the cache.
_CACHE: dict[tuple, list[Clip]] = {}
_CACHE_ENTRIES = 4
_CACHE_BYTES = 256 << 20  # larger corpora are decoded on every call instead


def load_corpus(root, size: int | None = None, split: str | None = None, strict: bool = False,
                progress: bool = False, face_crop: bool = True) -> list[Clip]:
    """All clips of a synthetic corpus (split "train"/"val"/None) or of a real folder (split must be None).

    Real clips are cropped to the detected face (face_crop, see edgeth.data.real); synthetic
    clips are already framed.

    Synthetic corpora are decoded once per process (small LRU); real folders every call.
    """
    root = Path(root)
    if not root.exists():
        raise InputError(f"data folder not found: {root}", "create one with `edgeth data synth DIR` or pass a folder of mp4 clips")
    if not root.is_dir():
        raise InputError(f"{root} is not a folder", "pass the folder that holds the clips")
    manifest = read_manifest(root)
    if manifest is not None:
        if split not in (None, "train", "val"):
            raise InputError(f"unknown split {split!r}", "use train, val or none")
        st = (root / "manifest.json").stat()
        key = (str(root.resolve()), st.st_ino, st.st_mtime_ns, size, split)
        clips = _CACHE.pop(key, None) or _load_synthetic(root, manifest, size, split, progress)
        if sum(c.frames.nbytes for c in clips) <= _CACHE_BYTES:
            _CACHE[key] = clips  # (re)inserted last: the least recently used entry goes first
            while len(_CACHE) > _CACHE_ENTRIES:
                _CACHE.pop(next(iter(_CACHE)))
        if key in _CACHE:
            clips = [dataclasses.replace(c, frames=c.frames.copy(), audio=c.audio.copy(),
                                         gt={k: v.copy() for k, v in c.gt.items()}) for c in clips]
    else:
        from edgeth.data.real import load_real_folder

        if split is not None:
            raise InputError(f"{root} is a real-clip folder and has no {split!r} split", "split real data into two folders")
        clips = load_real_folder(root, size=size, strict=strict, progress=progress, face_crop=face_crop)
    if not clips:
        raise InputError(f"no clips found in {root}" + (f" for split {split!r}" if split else ""),
                         "add *.mp4 clips (with audio or a sidecar .wav) or run `edgeth data synth`")
    return clips
