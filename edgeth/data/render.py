"""Procedural talking-head renderer: identity + per-frame motion -> anti-aliased RGB frames.

Every shape is a signed-distance field in resolution-independent coordinates (x right,
y down, the image spans [-1, 1]); a pixel's coverage is clip(0.5 - d / pixel, 0, 1), so
edges are anti-aliased and motion is sub-pixel smooth; `supersample` > 1 additionally
renders larger and box-filters down. Layers, back to front: static background and torso,
then the head layer (back hair, ears, face, hair, brows, eyes, nose, mouth), which moves
as a 2-D similarity transform (roll = rotation about the neck, yaw/pitch = shift plus a
slight foreshortening) with parallax: facial features shift further than the outline.

Motion keys (per frame): yaw, pitch, roll (degrees), gaze_x, gaze_y (-1..1), blink (0 open
.. 1 closed), mouth_open, mouth_width (0..1).

Shape legend: T frames, H = W = size, 3 RGB channels.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

MOTION_KEYS = ("mouth_open", "mouth_width", "blink", "yaw", "pitch", "roll", "gaze_x", "gaze_y")
HAIR_STYLES = ("short", "long", "bald", "bun", "fringe")
BG_TEXTURES = ("flat", "gradient", "stripes", "checker", "blobs", "waves")
_SKIN = np.array([[0.97, 0.82, 0.71], [0.86, 0.65, 0.50], [0.62, 0.43, 0.30], [0.36, 0.24, 0.17]])
_HAIR = np.array([[0.07, 0.06, 0.05], [0.33, 0.21, 0.12], [0.85, 0.70, 0.42], [0.58, 0.24, 0.10], [0.62, 0.62, 0.64]])


@dataclass(frozen=True)
class Identity:
    face_w: float
    face_h: float
    chin: float  # 0 round .. 1 pointed
    skin: tuple[float, float, float]
    hair_style: str
    hair_color: tuple[float, float, float]
    hairline: float  # y of the hairline relative to the face centre, in face heights
    eye_spacing: float  # half distance between eye centres, in face widths
    eye_y: float
    eye_size: float
    iris_color: tuple[float, float, float]
    mouth_y: float  # in face heights below the centre
    mouth_w: float
    lip_color: tuple[float, float, float]
    shirt_color: tuple[float, float, float]
    bg_color: tuple[float, float, float]
    bg_color2: tuple[float, float, float]
    bg_texture: str
    bg_freq: float
    bg_angle: float
    bg_phase: float

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "Identity":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in cls.__dataclass_fields__})


def _rgb(c) -> tuple[float, float, float]:
    return tuple(float(x) for x in np.clip(c, 0, 1))


def sample_identity(rng: np.random.Generator) -> Identity:
    t = rng.uniform(0, len(_SKIN) - 1)
    skin = _SKIN[int(t)] * (1 - t % 1) + _SKIN[min(int(t) + 1, len(_SKIN) - 1)] * (t % 1)
    hair = _HAIR[rng.integers(len(_HAIR))] if rng.random() < 0.85 else rng.uniform(0.1, 0.9, 3)
    bg = rng.uniform(0.15, 0.95, 3)
    bg2 = np.clip(bg * rng.uniform(0.55, 0.85) + rng.uniform(-0.15, 0.15, 3), 0, 1)
    return Identity(
        face_w=float(rng.uniform(0.30, 0.38)), face_h=float(rng.uniform(0.40, 0.48)), chin=float(rng.uniform(0, 1)),
        skin=_rgb(skin * rng.uniform(0.95, 1.05, 3)), hair_style=str(rng.choice(HAIR_STYLES)), hair_color=_rgb(hair),
        hairline=float(rng.uniform(-0.62, -0.42)), eye_spacing=float(rng.uniform(0.36, 0.46)),
        eye_y=float(rng.uniform(-0.16, -0.06)), eye_size=float(rng.uniform(0.85, 1.15)),
        iris_color=_rgb(rng.uniform(0.05, 0.6, 3)), mouth_y=float(rng.uniform(0.42, 0.54)),
        mouth_w=float(rng.uniform(0.26, 0.36)), lip_color=_rgb(skin * np.array([0.85, 0.55, 0.55]) + [0.08, 0.0, 0.02]),
        shirt_color=_rgb(rng.uniform(0.05, 0.95, 3)), bg_color=_rgb(bg), bg_color2=_rgb(bg2),
        bg_texture=str(rng.choice(BG_TEXTURES)), bg_freq=float(rng.uniform(2, 7)), bg_angle=float(rng.uniform(0, np.pi)),
        bg_phase=float(rng.uniform(0, 2 * np.pi)),
    )


def neutral_motion(n_frames: int) -> dict[str, np.ndarray]:
    m = {k: np.zeros(n_frames, np.float32) for k in MOTION_KEYS}
    m["mouth_width"][:] = 0.5
    return m


# --- signed distances (negative inside) --------------------------------------------------
def _ellipse(x, y, cx, cy, a, b):
    """Approximate distance to an axis-aligned ellipse (exact on the axes and the boundary)."""
    px, py = (x - cx) / a, (y - cy) / b
    pxx, pyy = px * px, py * py
    k0 = np.sqrt(pxx + pyy)
    k1 = np.sqrt(pxx / a**2 + pyy / b**2) + 1e-9
    return k0 * (k0 - 1.0) / k1


def _cover(d, px):
    return np.clip(0.5 - d / px, 0.0, 1.0)


def _over(img, color, alpha):
    """Composite a flat colour (3,) with coverage alpha [..., H, W] over img [..., H, W, 3], in place.

    Only the rows/columns where some alpha > 0 are touched (identical result, much less work
    for small features such as eyes and nostrils).
    """
    hit = alpha > 0
    if hit.ndim > 2:
        hit = hit.any(axis=tuple(range(hit.ndim - 2)))
    rows, cols = np.flatnonzero(hit.any(1)), np.flatnonzero(hit.any(0))
    if rows.size == 0:
        return
    r, c = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    a = alpha[..., r, c, None]
    region = img[..., r, c, :]
    region *= 1 - a
    region += a * np.asarray(color, np.float32)


def background(ident: Identity, size: int) -> np.ndarray:
    """Static layer: textured background plus neck and torso, float32 [H, W, 3]."""
    x, y = _grid(size)
    c1, c2 = np.array(ident.bg_color, np.float32), np.array(ident.bg_color2, np.float32)
    u = x * np.cos(ident.bg_angle) + y * np.sin(ident.bg_angle)
    v = -x * np.sin(ident.bg_angle) + y * np.cos(ident.bg_angle)
    f, ph = ident.bg_freq, ident.bg_phase
    tex = ident.bg_texture
    if tex == "flat":
        m = np.zeros_like(x)
    elif tex == "gradient":
        m = (u + 1.5) / 3
    elif tex == "stripes":
        m = 0.5 + 0.5 * np.tanh(3 * np.sin(np.pi * f * u + ph))
    elif tex == "checker":
        m = 0.5 + 0.5 * np.tanh(3 * np.sin(np.pi * f * u + ph) * np.sin(np.pi * f * v))
    elif tex == "blobs":
        m = 0.5 + 0.25 * (np.sin(f * u + ph) + np.cos(0.7 * f * v - ph))
    else:  # waves
        m = 0.5 + 0.5 * np.sin(np.pi * f * u + 1.5 * np.sin(2.3 * v + ph))
    img = c1 * (1 - m[..., None]) + c2 * m[..., None]
    px = _px(size)
    _over(img, ident.shirt_color, _cover(_ellipse(x, y, 0.0, 1.25, 0.85, 0.55), px))
    neck = np.maximum(np.abs(x) - ident.face_w * 0.45, np.maximum(-y + 0.2, y - 0.85))
    _over(img, np.array(ident.skin) * 0.82, _cover(neck, px))
    return img.astype(np.float32)


# Camera: a talking-head crop (the face fills ~60% of the frame, as in real datasets).
ZOOM, CENTER_Y = 1.6, 0.0


def _grid(size: int):
    c = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    y, x = np.meshgrid(c, c, indexing="ij")
    return x / ZOOM, y / ZOOM + CENTER_Y


def _px(size: int) -> float:
    """One pixel in scene units (the anti-aliasing width)."""
    return 2.0 / size / ZOOM


def render_frames(ident: Identity, motion: dict[str, np.ndarray], size: int, supersample: int = 1, chunk: int = 16) -> np.ndarray:
    """uint8 [T, size, size, 3] for the per-frame motion dict (MOTION_KEYS, each [T])."""
    n = len(motion["mouth_open"])
    s = size * supersample
    bg = background(ident, s)
    out = np.empty((n, size, size, 3), np.uint8)
    for a in range(0, n, chunk):
        sl = {k: np.asarray(motion[k][a : a + chunk], np.float32)[:, None, None] for k in MOTION_KEYS}
        img = _head_layer(ident, sl, bg, s)
        if supersample > 1:
            img = img.reshape(-1, size, supersample, size, supersample, 3).mean(axis=(2, 4))
        out[a : a + chunk] = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    return out


def _head_layer(ident: Identity, m: dict[str, np.ndarray], bg: np.ndarray, size: int) -> np.ndarray:
    """Composite the head over the static layer for a chunk of frames: float32 [t, H, W, 3]."""
    x, y = _grid(size)
    t = m["yaw"].shape[0]
    img = np.broadcast_to(bg, (t, *bg.shape)).copy()
    yaw, pitch, roll = (np.deg2rad(m[k]) for k in ("yaw", "pitch", "roll"))
    sy_, sp = np.sin(yaw), np.sin(pitch)
    fw, fh = ident.face_w, ident.face_h
    cx, cy = 0.0, -0.12
    # Inverse similarity: image -> head coordinates (pivot at the neck, below the chin).
    piv = cy + fh * 0.9
    dx, dy = x - (0.20 * sy_) - cx, y - (0.12 * sp) - piv
    cr, sr = np.cos(-roll), np.sin(-roll)
    hx = (cr * dx - sr * dy) / (1 - 0.12 * (1 - np.cos(yaw)))
    hy = (sr * dx + cr * dy) / (1 - 0.12 * (1 - np.cos(pitch))) + piv - cy
    px = _px(size)
    skin = np.array(ident.skin, np.float32)
    hair = np.array(ident.hair_color, np.float32)

    def feat(kx, ky):  # feature coordinates shift with yaw/pitch (parallax)
        return hx - kx * fw * sy_, hy - ky * fh * sp

    style = ident.hair_style
    if style == "long":
        _over(img, hair * 0.85, _cover(_ellipse(hx + 0.1 * fw * sy_, hy, 0, fh * 0.35, fw * 1.3, fh * 1.25), px))
    for side in (-1, 1):  # ears
        _over(img, skin * 0.9, _cover(_ellipse(hx + 0.08 * fw * sy_, hy, side * fw * 0.98, -0.02, fw * 0.16, fh * 0.2), px))
    # Face: an ellipse whose lower half narrows into the chin; shaded toward the rim.
    taper = 1 - 0.3 * ident.chin * np.clip(hy / fh, 0, 1) ** 2
    d_face = _ellipse(hx / taper, hy, 0, 0, fw, fh)
    rim = np.clip((hx / fw) ** 2 + (hy / fh) ** 2, 0, 1)
    shade = (1.0 - 0.16 * rim - 0.05 * (hx + hy) / fw)[..., None]
    face_a = _cover(d_face, px)[..., None]
    img *= 1 - face_a
    img += face_a * skin * shade
    if style != "bald":
        top = _ellipse(hx, hy, 0, -fh * 0.08, fw * 1.07, fh * 1.0)
        line = ident.hairline * fh + (0.12 if style == "fringe" else 0.0) + 0.5 * hx**2 / fw
        d_hair = np.maximum(top, hy - line)
        if style == "bun":
            d_hair = np.minimum(d_hair, _ellipse(hx, hy, 0, -fh * 1.05, fw * 0.38, fh * 0.25))
        _over(img, hair, _cover(d_hair, px))
    # Eyes: brows, sclera clipped by the lids (blink), iris and pupil moved by gaze.
    blink = np.clip(m["blink"], 0, 1)
    ew, eh = 0.17 * fw * ident.eye_size, 0.09 * fh * ident.eye_size
    for side in (-1, 1):
        ex, ey = side * ident.eye_spacing * fw, ident.eye_y * fh
        fx, fy = feat(0.35, 0.3)
        squash = 1 - 0.35 * side * sy_  # the far eye looks narrower
        brow = _ellipse(fx, fy, ex, ey - eh * 2.2, ew * 1.15 * squash, eh * 0.35)
        _over(img, hair * 0.8 + 0.05, _cover(brow, px))
        open_h = eh * (1 - blink) + eh * 0.06  # a closed eye stays a thin slit (keeps the SDF sane)
        d_eye = _ellipse(fx, fy, ex, ey + eh * 0.3 * blink, ew * squash, open_h)
        eye_a = _cover(d_eye, px)
        _over(img, [0.95, 0.95, 0.93], eye_a)
        ix, iy = ex + m["gaze_x"] * ew * 0.45 * squash, ey + m["gaze_y"] * eh * 0.4
        _over(img, ident.iris_color, _cover(_ellipse(fx, fy, ix, iy, eh * 0.75 * squash, eh * 0.75), px) * eye_a)
        _over(img, [0.03, 0.03, 0.03], _cover(_ellipse(fx, fy, ix, iy, eh * 0.35 * squash, eh * 0.35), px) * eye_a)
        lash = np.abs(d_eye) - 0.012 * fh
        near = _cover(_ellipse(fx, fy, ex, ey, ew * 1.4, eh * 2.0), px)  # lashes only around the eye
        _over(img, hair * 0.4, _cover(lash, px) * near * np.clip(0.3 + blink, 0, 1))
    # Nose: a soft shadow and two nostrils.
    nx, ny = feat(0.5, 0.35)
    _over(img, skin * 0.75, 0.6 * _cover(_ellipse(nx, ny, 0, fh * 0.22, fw * 0.12, fh * 0.07), px * 6))
    for side in (-1, 1):
        _over(img, skin * 0.45, _cover(_ellipse(nx, ny, side * fw * 0.07, fh * 0.27, fw * 0.035, fh * 0.02), px))
    # Mouth: lips around a dark opening with teeth; opening height and width follow the viseme.
    mx, my = feat(0.35, 0.3)
    mw = ident.mouth_w * fw * (0.7 + 0.6 * np.clip(m["mouth_width"], 0, 1))
    mh = fh * (0.01 + 0.17 * np.clip(m["mouth_open"], 0, 1.2))
    cy_m = ident.mouth_y * fh
    _over(img, ident.lip_color, _cover(_ellipse(mx, my, 0, cy_m, mw + 0.04 * fw, mh + 0.045 * fh), px))
    inner = _cover(_ellipse(mx, my, 0, cy_m, mw, mh), px)
    _over(img, [0.22, 0.04, 0.06], inner)
    teeth = _cover(np.maximum(my - (cy_m - mh * 0.45), -(my - cy_m + mh * 2)), px)
    _over(img, [0.93, 0.92, 0.88], teeth * inner)
    return img
