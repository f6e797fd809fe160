"""Real talking-head clips: a folder of *.mp4 (audio track or sidecar .wav), and `data inspect`.

Unreadable or audio-less files are skipped with a warning and counted (strict=True makes
them errors). Frames are retimed to 25 fps (nearest frame) and cropped to the face the way
inference crops a portrait (runtime_py.face: one median box per clip from detections on every
5th frame, framed like the synthetic corpus; a clip with no face is skipped), or centre-cropped
with face_crop=False; then resized to the model size. Audio is resampled to 16 kHz mono and
fitted to 640 samples per frame.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgeth.errors import InputError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")


def find_videos(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())


def _audio_for(video: Path) -> np.ndarray:
    from edgeth.data.video import read_audio

    side = video.with_suffix(".wav")
    return read_audio(side if side.is_file() else video)


def clip_crop_box(frames: np.ndarray, name: str, stride: int = 5):
    """The one crop box (runtime_py.face.Box) for a clip: the median face detection, framed like the corpus."""
    from edgeth.runtime_py.face import DEFAULT_FRAMING, crop_box, stable_box
    from edgeth.runtime_py.face_detect import detect_track

    face = stable_box(detect_track(frames, stride=stride))
    if face is None:
        raise InputError(f"no face found in {name}", "remove the clip, or load the folder with face_crop=False")
    return crop_box(face, DEFAULT_FRAMING)


def face_crop_clip(frames: np.ndarray, size: int | None, name: str) -> np.ndarray:
    """uint8 [T, H, W, 3] -> [T, size, size, 3] cropped with one temporally stable face box."""
    from edgeth.runtime_py.face import crop

    box = clip_crop_box(frames, name)
    side = int(size) if size else int(box.rounded().w)
    return np.stack([crop(f, box, side) for f in frames])


def load_real_folder(root, size: int | None = None, strict: bool = False, progress: bool = False,
                     face_crop: bool = True) -> list:
    from tqdm import tqdm

    from edgeth.data.dataset import Clip, align, retime
    from edgeth.data.synth import FPS
    from edgeth.data.video import read_video

    root = Path(root)
    clips, problems = [], []
    for p in tqdm(find_videos(root), desc="load clips", unit="clip", disable=not progress):
        try:
            frames, fps = read_video(p)
            audio = _audio_for(p)
            if face_crop:
                frames, fps = face_crop_clip(retime(frames, fps), size, p.name), FPS
        except InputError as e:
            if strict:
                raise
            problems.append(f"{p.name}: {e.what}")
            continue
        frames, audio = align(frames, audio, fps, size)
        clips.append(Clip(p.stem, p.stem, frames, audio, float(FPS), None, None))
    if problems:
        warnings.warn(f"skipped {len(problems)} of {len(problems) + len(clips)} clips in {root}: " + "; ".join(problems[:5]),
                      stacklevel=2)
    return clips


def _probe_file(p: Path) -> dict[str, Any]:
    """Container facts without decoding every frame (PyAV stream metadata)."""
    import av

    info: dict[str, Any] = {"file": p.name, "problems": []}
    try:
        with av.open(str(p)) as c:
            if not c.streams.video:
                info["problems"].append("no video stream")
            else:
                vs = c.streams.video[0]
                info["fps"] = float(vs.average_rate or vs.guessed_rate or 0)
                info["width"], info["height"] = vs.codec_context.width, vs.codec_context.height
                dur = vs.duration * vs.time_base if vs.duration else (c.duration / 1e6 if c.duration else None)
                info["seconds"] = float(dur) if dur else None
            if c.streams.audio:
                info["audio_rate"] = int(c.streams.audio[0].rate)
                info["audio_channels"] = int(c.streams.audio[0].channels)
                info["audio_source"] = "track"
    except Exception as e:
        info["problems"].append(f"unreadable ({type(e).__name__}: {str(e)[:80]})")
        return info
    side = p.with_suffix(".wav")
    if side.is_file():
        from scipy.io import wavfile

        try:
            sr, data = wavfile.read(str(side), mmap=True)
            info.update(audio_rate=int(sr), audio_channels=1 if data.ndim == 1 else int(data.shape[1]), audio_source="sidecar wav")
        except Exception as e:
            info["problems"].append(f"sidecar wav unreadable ({e})")
    if "audio_source" not in info:
        info["problems"].append("no audio (no track, no sidecar .wav)")
    return info


def inspect_folder(root) -> dict[str, Any]:
    """Clip count, durations, fps, resolutions, audio rates and problems found."""
    from edgeth.data.synth import read_manifest

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"data folder not found: {root}", "pass an existing folder of clips")
    files = [_probe_file(p) for p in find_videos(root)]
    if not files:
        raise InputError(f"no video files in {root}", f"expected {', '.join(VIDEO_SUFFIXES)} files")
    ok = [f for f in files if not f["problems"]]
    secs = [f["seconds"] for f in ok if f.get("seconds")]
    m = read_manifest(root)
    return {
        "root": str(root),
        "kind": "synthetic" if m else "real",
        "clips": len(files),
        "usable": len(ok),
        "seconds_total": round(float(sum(secs)), 2),
        "seconds_min": round(float(min(secs)), 2) if secs else None,
        "seconds_max": round(float(max(secs)), 2) if secs else None,
        "fps": sorted({round(f["fps"], 3) for f in ok if f.get("fps")}),
        "resolutions": sorted({f"{f['width']}x{f['height']}" for f in ok if f.get("width")}),
        "audio_rates": sorted({f["audio_rate"] for f in ok if f.get("audio_rate")}),
        "splits": ({s: len(v) for s, v in m["splits"].items()} if m else None),
        "problems": [f"{f['file']}: {p}" for f in files for p in f["problems"]],
    }
