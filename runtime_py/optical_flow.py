"""A small classical optical-flow estimator for parity metrics: Horn-Schunck (1981) in numpy.

Used by Flow Smoothness as the Microscope paper defines it (seeds/001 Appendix A.3, Eq. 13):
the flow u = (u, v) between consecutive frames, its spatial Jacobian grad u, and
FS = sqrt(mean over pixels of ||grad u||_F^2). Jitter shows as spikes in the flow field, which
raise FS, while smooth motion keeps it low. No learned network, nothing exported, no
dependency beyond numpy: the metric is the same on every machine.

Horn-Schunck: brightness constancy Ix u + Iy v + It = 0 with a global smoothness prior of
weight alpha^2, solved by the classic Jacobi iteration
  u <- u_avg - Ix (Ix u_avg + Iy v_avg + It) / (alpha^2 + Ix^2 + Iy^2)   (and v alike)
on gray frames in [0, 1]; derivatives averaged over the 2x2x2 cube of the two frames as in
the paper, edges replicated. Flows are in pixels per frame of the analysis scale: videos are
area-averaged down to at most 64 pixels a side first (`ANALYSIS_SIZE`), so the figure is
comparable across resolutions and verify stays fast at 512^2 (~0.1 s per frame pair).

Shape legend: T frames, H/W size, C channels.
"""
from __future__ import annotations

import numpy as np


ANALYSIS_SIZE = 64


def _analysis_scale(frames: np.ndarray) -> np.ndarray:
    """[T, H, W, C] -> area-averaged by the integer factor that brings max(H, W) to <= ANALYSIS_SIZE."""
    k = -(-max(frames.shape[1:3]) // ANALYSIS_SIZE)
    if k <= 1:
        return frames
    t, h, w = frames.shape[0], frames.shape[1] // k * k, frames.shape[2] // k * k
    f = np.asarray(frames[:, :h, :w], dtype=np.float64)
    return f.reshape(t, h // k, k, w // k, k, *f.shape[3:]).mean(axis=(2, 4))


def _gray(frame: np.ndarray) -> np.ndarray:
    f = np.asarray(frame, dtype=np.float64)
    return f @ np.array([0.299, 0.587, 0.114]) if f.ndim == 3 and f.shape[-1] == 3 else f.reshape(f.shape[:2])


def _shift(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """a shifted so that out[y, x] = a[y + dy, x + dx], edges replicated."""
    h, w = a.shape
    ys = np.clip(np.arange(h) + dy, 0, h - 1)
    xs = np.clip(np.arange(w) + dx, 0, w - 1)
    return a[ys][:, xs]


def _average(a: np.ndarray) -> np.ndarray:
    """Horn-Schunck's neighbourhood average (1/6 edge neighbours, 1/12 diagonals)."""
    edge = _shift(a, -1, 0) + _shift(a, 1, 0) + _shift(a, 0, -1) + _shift(a, 0, 1)
    diag = _shift(a, -1, -1) + _shift(a, -1, 1) + _shift(a, 1, -1) + _shift(a, 1, 1)
    return edge / 6 + diag / 12


def horn_schunck(a: np.ndarray, b: np.ndarray, alpha: float = 0.1, iters: int = 40) -> np.ndarray:
    """Flow [H, W, 2] (u, v in pixels) from frame a to frame b ([H, W, 3] or [H, W], values in [0, 1])."""
    a, b = _gray(a), _gray(b)

    def quad(f):  # the 2x2 cube's four samples of f at (y, x), (y, x+1), (y+1, x), (y+1, x+1)
        return f, _shift(f, 0, 1), _shift(f, 1, 0), _shift(f, 1, 1)

    a00, a01, a10, a11 = quad(a)
    b00, b01, b10, b11 = quad(b)
    ix = (a01 - a00 + a11 - a10 + b01 - b00 + b11 - b10) / 4
    iy = (a10 - a00 + a11 - a01 + b10 - b00 + b11 - b01) / 4
    it = (b00 - a00 + b01 - a01 + b10 - a10 + b11 - a11) / 4
    u, v = np.zeros_like(a), np.zeros_like(a)
    den = alpha**2 + ix**2 + iy**2
    for _ in range(iters):
        ua, va = _average(u), _average(v)
        r = (ix * ua + iy * va + it) / den
        u, v = ua - ix * r, va - iy * r
    return np.stack([u, v], axis=-1)


def flow_field_smoothness(flow: np.ndarray) -> float:
    """Eq. 13: sqrt(mean over pixels of ||grad u||_F^2) of one flow field [H, W, 2]."""
    f = np.asarray(flow, dtype=np.float64)
    gy, gx = np.gradient(f[..., 0]), np.gradient(f[..., 1])  # each: (d/dy, d/dx)
    return float(np.sqrt(np.mean(gy[0] ** 2 + gy[1] ** 2 + gx[0] ** 2 + gx[1] ** 2)))


def video_flow_smoothness(frames: np.ndarray, alpha: float = 0.1, iters: int = 40) -> float:
    """Mean Eq. 13 FS over the flows between consecutive frames of a video [T, H, W, C] (0 for T < 2),
    at the analysis scale."""
    fr = np.asarray(frames)
    if fr.shape[0] < 2:
        return 0.0
    fr = _analysis_scale(fr)
    return float(np.mean([flow_field_smoothness(horn_schunck(fr[i], fr[i + 1], alpha, iters))
                          for i in range(fr.shape[0] - 1)]))
