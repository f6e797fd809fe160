"""Portrait in, full-resolution video out: crop the face to the model's framing, paste frames back.

Follows the crop -> animate -> paste-back scheme of LivePortrait/SadTalker/Ditto: a detected
face box (edgeth.runtime_py.face_detect) is turned into the crop the model was trained on
(Framing: where the face box sits in the model's input square, measured on the synthetic
corpus by edgeth.data.framing and recorded in the run config and the bundle's
PipelineSpec.normalization["framing"]); the generated frames are resized back into the crop
box of the original photo and blended with a feathered elliptical mask, so everything outside
the box stays bit-identical to the photo. An app reproduces it from the JSON `to_json()` writes
(the crop box in photo pixels + the framing + the feather).

    pc = prepare_portrait(photo_uint8, size=spec.image_size, framing=framing_from_spec(spec))
    result = pipeline.run(pc.model_input, audio)
    video = pc.paste(result.frames)      # uint8 [T, H, W, 3] at the photo's resolution

Shape legend: H/W photo pixels, s the model's input size, T frames, 3 RGB channels.
Boxes are (x, y, w, h) in photo pixels, x right, y down; they may extend past the photo
(the crop pads by edge replication; paste-back only writes inside the photo).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgeth.errors import InputError

FEATHER = 0.12  # paste-back mask ramp, as a fraction of the crop side


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2

    def rounded(self) -> "Box":
        x, y = round(self.x), round(self.y)
        return Box(x, y, max(1, round(self.x + self.w) - x), max(1, round(self.y + self.h) - y))

    def to_json(self) -> list[float]:
        return [round(float(v), 2) for v in (self.x, self.y, self.w, self.h)]


@dataclass(frozen=True)
class Framing:
    """Where the detector's face box sits in the model's square input (fractions of its side)."""

    center_x: float
    center_y: float
    size: float  # face-box side / crop side
    box: str = "haar frontal-face box"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> "Framing":
        if not d:
            return DEFAULT_FRAMING
        try:
            f = cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
        except TypeError as e:
            raise InputError(f"invalid face framing {d!r} ({e})", "re-export the bundle or re-train the run") from None
        if not (0 < f.size <= 1.5 and 0 <= f.center_x <= 1 and 0 <= f.center_y <= 1):
            raise InputError(f"invalid face framing {d!r}", "re-export the bundle or re-train the run")
        return f


# Measured by `python -m edgeth.data.framing` (Haar, 300 synthetic identities at 256 px, 108
# detected; medians; sd 0.007 / 0.016 / 0.055). The renderer draws every head at the same
# place, so every family and preset trained on the corpus shares it; runs and bundles that
# predate the field get this default.
DEFAULT_FRAMING = Framing(center_x=0.498, center_y=0.416, size=0.652)


def framing_from_spec(spec: Any) -> Framing:
    """The framing a PipelineSpec (or its JSON) records, else DEFAULT_FRAMING."""
    norm = spec.get("normalization", {}) if isinstance(spec, dict) else getattr(spec, "normalization", {})
    return Framing.from_json((norm or {}).get("framing"))


def crop_box(face: Box, framing: Framing = DEFAULT_FRAMING) -> Box:
    """Face box -> the square crop box that puts it where the framing says."""
    side = max(face.w, face.h) / framing.size
    cx, cy = face.center
    return Box(cx - framing.center_x * side, cy - framing.center_y * side, side, side)


def centre_box(height: int, width: int) -> Box:
    """The centre square (what --no-crop feeds the model, as edgeth.data.video.center_crop_resize)."""
    s = min(height, width)
    return Box((width - s) // 2, (height - s) // 2, s, s)


def crop(image: np.ndarray, box: Box, size: int) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [size, size, 3]: the (rounded) box, edge-padded past the photo, resized."""
    from PIL import Image

    b = box.rounded()
    h, w = image.shape[:2]
    x0, y0, x1, y1 = int(b.x), int(b.y), int(b.x + b.w), int(b.y + b.h)
    pad = ((max(0, -y0), max(0, y1 - h)), (max(0, -x0), max(0, x1 - w)), (0, 0))
    region = image[max(0, y0):min(h, y1), max(0, x0):min(w, x1)]
    if region.size == 0:
        raise InputError(f"crop box {b.to_json()} lies outside the {w}x{h} photo", "pass a box that overlaps the photo")
    if any(p for p in pad[0] + pad[1]):
        region = np.pad(region, pad, mode="edge")
    if region.shape[:2] == (size, size):
        return np.ascontiguousarray(region)
    down = min(region.shape[:2]) > size  # area filter when shrinking, bicubic when enlarging
    return np.asarray(Image.fromarray(region).resize((size, size), Image.BOX if down else Image.BICUBIC))


def feather_mask(width: int, height: int, feather: float = FEATHER) -> np.ndarray:
    """float32 [height, width] in [0, 1]: 1 inside the box's inscribed ellipse, ramping to 0 at its rim."""
    u = (np.arange(width, dtype=np.float32) + 0.5) / width * 2 - 1
    v = (np.arange(height, dtype=np.float32) + 0.5) / height * 2 - 1
    r = np.sqrt(u[None, :] ** 2 + v[:, None] ** 2)
    return np.clip((1.0 - r) / max(2 * feather, 1e-6), 0.0, 1.0)


def paste_back(original: np.ndarray, frames: np.ndarray, box: Box, feather: float = FEATHER) -> np.ndarray:
    """Generated crops [T, s, s, 3] (float [0, 1] or uint8) -> uint8 [T, H, W, 3] over the photo.

    Pixels where the mask is 0 (everything outside the box, and the box's corners) are the
    photo's own bytes.
    """
    from PIL import Image

    from edgeth.data.video import to_uint8

    orig = np.asarray(original)
    if orig.dtype != np.uint8:
        orig = to_uint8(orig)
    h, w = orig.shape[:2]
    b = box.rounded()
    x0, y0, bw, bh = int(b.x), int(b.y), int(b.w), int(b.h)
    # the part of the box inside the photo
    ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(w, x0 + bw), min(h, y0 + bh)
    out = np.broadcast_to(orig, (len(frames), *orig.shape)).copy()
    if ix1 <= ix0 or iy1 <= iy0:
        return out
    m = feather_mask(bw, bh, feather)[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0, None]
    under = orig[iy0:iy1, ix0:ix1].astype(np.float32)
    for t, f in enumerate(frames):
        f = np.asarray(f)
        chans = [np.asarray(Image.fromarray(np.ascontiguousarray(f[..., c], np.float32), mode="F")
                            .resize((bw, bh), Image.BICUBIC)) for c in range(3)]
        big = np.stack(chans, -1)[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]
        if f.dtype != np.uint8:
            big = big * 255.0
        blend = under * (1.0 - m) + np.clip(big, 0, 255) * m
        out[t, iy0:iy1, ix0:ix1] = np.where(m > 0, np.round(blend), under).astype(np.uint8)
    return out


def stable_box(boxes: list[Box | None]) -> Box | None:
    """One box for a whole clip: the per-coordinate median of the detections (None = no face anywhere)."""
    got = [b for b in boxes if b is not None]
    if not got:
        return None
    c = np.median([[*b.center, max(b.w, b.h)] for b in got], axis=0)
    return Box(c[0] - c[2] / 2, c[1] - c[2] / 2, c[2], c[2])


def smooth_boxes(boxes: list[Box | None], alpha: float = 0.2) -> list[Box | None]:
    """Per-frame boxes for a moving head: EMA of centre and size, holding the last box through misses."""
    out: list[Box | None] = []
    state = None
    for b in boxes:
        if b is not None:
            v = np.array([*b.center, max(b.w, b.h)])
            state = v if state is None else (1 - alpha) * state + alpha * v
        out.append(None if state is None else Box(state[0] - state[2] / 2, state[1] - state[2] / 2, state[2], state[2]))
    return out


@dataclass
class PortraitCrop:
    """A photo, the box the model sees and how to put its frames back (the reusable runtime step)."""

    photo: np.ndarray  # uint8 [H, W, 3]
    box: Box  # crop box in photo pixels
    size: int  # the model's input side s
    mode: str  # "detected" | "forced" | "centre"
    framing: Framing = DEFAULT_FRAMING
    face: Box | None = None  # the detection, when mode == "detected"
    feather: float = FEATHER

    @property
    def model_input(self) -> np.ndarray:
        """float32 [s, s, 3] in [0, 1]."""
        return crop(self.photo, self.box, self.size).astype(np.float32) / 255.0

    def paste(self, frames: np.ndarray, paste: bool = True) -> np.ndarray:
        """uint8 frames: pasted into the photo at its resolution, or the crops themselves (paste=False)."""
        from edgeth.data.video import to_uint8

        return paste_back(self.photo, frames, self.box, self.feather) if paste else to_uint8(np.asarray(frames))

    def to_json(self) -> dict[str, Any]:
        h, w = self.photo.shape[:2]
        return {"mode": self.mode, "box": self.box.rounded().to_json(), "photo_size": [int(w), int(h)],
                "model_size": int(self.size), "face": self.face.to_json() if self.face else None,
                "framing": self.framing.to_json(), "feather": self.feather,
                "resize": "box edge-padded past the photo; area filter down, bicubic up",
                "paste": "bicubic back to the box, blended with an elliptical mask ramping to 0 over `feather` of its side"}


def prepare_portrait(photo: np.ndarray, size: int, framing: Framing = DEFAULT_FRAMING, crop: str | Box = "auto",
                     detector: Any = "haar") -> PortraitCrop:
    """crop: "auto" (detect the face, frame it as the run was trained), "off" (centre square,
    for pre-cropped portraits) or a Box in photo pixels (forced)."""
    from edgeth.data.video import to_uint8

    img = to_uint8(np.asarray(photo))
    if img.ndim != 3 or img.shape[-1] != 3:
        raise InputError(f"portrait has shape {img.shape}, expected [H, W, 3] RGB", "pass an RGB image")
    if isinstance(crop, Box):
        return PortraitCrop(img, crop, size, "forced", framing)
    if crop == "off":
        return PortraitCrop(img, centre_box(*img.shape[:2]), size, "centre", framing)
    from edgeth.runtime_py.face_detect import detect_face

    face = detect_face(img, detector)
    return PortraitCrop(img, crop_box(face, framing), size, "detected", framing, face)


def read_portrait(path: Any, spec: Any, crop: str | Box = "auto", detector: Any = "haar") -> PortraitCrop:
    """An image file at full resolution, cropped for a PipelineSpec (its image size and framing)."""
    from edgeth.data.video import read_image

    size = spec["image_size"] if isinstance(spec, dict) else spec.image_size
    return prepare_portrait(read_image(path), int(size), framing_from_spec(spec), crop, detector)


def parse_box(text: str) -> Box:
    """"x,y,w,h" in photo pixels -> Box (w, h > 0), or a one-line InputError."""
    try:
        x, y, w, h = (float(v) for v in str(text).split(","))
    except ValueError:
        raise InputError(f"--crop {text!r} is not x,y,w,h", "pass four numbers, e.g. --crop 120,40,256,256") from None
    if w <= 0 or h <= 0:
        raise InputError(f"--crop {text!r} has a non-positive width or height", "pass w and h > 0")
    return Box(x, y, w, h)
