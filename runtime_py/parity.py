"""Parity metrics: pure numpy/scipy functions over arrays, no runtime imports.

Metrics (ref = PyTorch FP32 reference, got = the port's output):
  max_abs, mean_abs   absolute error (max / mean over all elements)
  cosine              cosine similarity of the flattened arrays (1 = same direction)
  sqnr_db             signal-to-quantization-noise ratio 10*log10(sum ref^2 / sum (ref-got)^2)
  psnr_db             10*log10(peak^2 / MSE); peak is the image's data range (see `data_range`)
  ssim                mean SSIM, gaussian window (sigma 1.5, 11 taps), K1=0.01, K2=0.03,
                      computed per 2-D plane (each channel of each image) and averaged
  token_agreement     fraction of equal elements (for index/token outputs)
  max_lsb8, mean_lsb8 max / mean |ref-got| in 8-bit steps of the reference's range
                      ((max(ref) - min(ref)) / 255): an INT8 program's rounding unit,
                      whatever its output scale (gate 1, edgeth/tolerances.py RUNTIME)
  bias_lsb8           the largest |mean of (got-ref)| over one slice of the output — one index
                      along one axis (a channel, a frame, a row), slices of >= 32 elements —
                      in the same steps: a systematic error (a channel off, a wrong bias or
                      scale) where max/mean see scattered rounding flips of legitimate kernels
  flow_smoothness     FS(x) = mean |x[t+1] - 2 x[t] + x[t-1]| over t and all other axes:
                      the mean magnitude of the second temporal difference of a sequence
                      (frames [T,H,W,C] or motion [T,D]); 0 for motion with constant velocity.
                      Parity reports FS(got), FS(ref) and flow_smoothness_rel = |FS(got)-FS(ref)|/FS(ref).
  flow_smoothness_eq13  the Microscope paper's Flow Smoothness (seeds/001 App. A.3, Eq. 13) of a
                      video: sqrt(mean ||grad u||_F^2) of the Horn-Schunck optical flow u between
                      consecutive frames, averaged over the pairs (runtime_py.optical_flow); video
                      checks report it for got and ref beside the per-frame PSNR (spikes in the
                      flow field = jitter that per-frame metrics hide).

Identical arrays give max_abs 0, cosine 1, SQNR/PSNR = inf, SSIM 1.

A tolerance is a dict {metric: bound}. Bounds on error metrics (max_abs, mean_abs,
flow_smoothness_rel) are upper bounds; all others (cosine, sqnr_db, psnr_db, ssim,
token_agreement) are lower bounds. `compare` passes when every bound holds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# metrics where smaller is better: the bound is a maximum
UPPER_BOUNDED = ("max_abs", "mean_abs", "flow_smoothness_rel", "max_lsb8", "mean_lsb8", "bias_lsb8")
ALL_METRICS = ("max_abs", "mean_abs", "cosine", "sqnr_db", "psnr_db", "ssim", "token_agreement",
               "flow_smoothness_rel", "max_lsb8", "mean_lsb8", "bias_lsb8")


def _f64(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _check_shapes(ref: np.ndarray, got: np.ndarray) -> None:
    if ref.shape != got.shape:
        raise ValueError(f"shape mismatch: reference {ref.shape}, got {got.shape}")


def max_abs(ref, got) -> float:
    r, g = _f64(ref), _f64(got)
    _check_shapes(r, g)
    return float(np.max(np.abs(r - g))) if r.size else 0.0


def mean_abs(ref, got) -> float:
    r, g = _f64(ref), _f64(got)
    _check_shapes(r, g)
    return float(np.mean(np.abs(r - g))) if r.size else 0.0


def cosine(ref, got) -> float:
    r, g = _f64(ref).ravel(), _f64(got).ravel()
    _check_shapes(r, g)
    nr, ng = float(np.linalg.norm(r)), float(np.linalg.norm(g))
    if nr == 0.0 and ng == 0.0:
        return 1.0
    if nr == 0.0 or ng == 0.0 or not math.isfinite(nr * ng):
        return 0.0  # also non-finite outputs (e.g. an FP16 overflow): no agreement to speak of
    return float(np.clip(np.dot(r, g) / (nr * ng), -1.0, 1.0))


def sqnr_db(ref, got) -> float:
    r, g = _f64(ref), _f64(got)
    _check_shapes(r, g)
    noise = float(np.sum((r - g) ** 2))
    signal = float(np.sum(r ** 2))
    if noise == 0.0:
        return math.inf
    if signal == 0.0 or not math.isfinite(noise):
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def _lsb8(ref) -> float:
    r = _f64(ref)
    return (float(r.max() - r.min()) / 255.0 if r.size else 0.0) or 1e-12


def max_lsb8(ref, got) -> float:
    return max_abs(ref, got) / _lsb8(ref)


def mean_lsb8(ref, got) -> float:
    return mean_abs(ref, got) / _lsb8(ref)


BIAS_SLICE_MIN = 32  # elements a slice needs for its mean to say "systematic" rather than "one flip"


def bias_lsb8(ref, got) -> float:
    d = _f64(got) - _f64(ref)
    worst = 0.0
    for ax in range(d.ndim):
        if d.shape[ax] > 1 and d.size // d.shape[ax] >= BIAS_SLICE_MIN:
            means = d.mean(axis=tuple(a for a in range(d.ndim) if a != ax))
            worst = max(worst, float(np.abs(means).max()))
    return worst / _lsb8(ref)


def data_range(ref) -> float:
    """Peak for PSNR/SSIM: 1 for images in [0,1], 2 for [-1,1], else the reference's range."""
    r = _f64(ref)
    lo, hi = float(r.min()), float(r.max())
    eps = 1e-3
    if lo >= -eps and hi <= 1 + eps:
        return 1.0
    if lo >= -1 - eps and hi <= 1 + eps:
        return 2.0
    return max(hi - lo, 1e-12)


def psnr_db(ref, got, peak: float | None = None) -> float:
    r, g = _f64(ref), _f64(got)
    _check_shapes(r, g)
    mse = float(np.mean((r - g) ** 2))
    if mse == 0.0:
        return math.inf
    peak = data_range(r) if peak is None else peak
    return 10.0 * math.log10(peak * peak / mse)


def _planes(a: np.ndarray) -> np.ndarray:
    """Reshape an image array to a stack of 2-D planes [N, H, W].

    Channels-last when the last axis has 1, 3 or 4 entries and the array is >= 3-D
    (e.g. frames [T,H,W,3]); otherwise channels-first / plain (e.g. [B,3,H,W], [H,W]).
    """
    if a.ndim < 2:
        raise ValueError(f"SSIM needs an image with >= 2 dims, got shape {a.shape}")
    if a.ndim >= 3 and a.shape[-1] in (1, 3, 4) and a.shape[-3] > 4:
        a = np.moveaxis(a, -1, -3)
    return a.reshape(-1, a.shape[-2], a.shape[-1])


def ssim(ref, got, peak: float | None = None, sigma: float = 1.5) -> float:
    """Mean structural similarity (Wang et al. 2004) with a gaussian window, over all planes."""
    from scipy.ndimage import gaussian_filter

    r, g = _f64(ref), _f64(got)
    _check_shapes(r, g)
    if np.array_equal(r, g):
        return 1.0
    peak = data_range(r) if peak is None else peak
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    rp, gp = _planes(r), _planes(g)

    def filt(x):  # blur each plane, not across planes; 11 taps = truncate 3.5 sigma
        return gaussian_filter(x, sigma=(0, sigma, sigma), truncate=3.5, mode="reflect")

    mu_r, mu_g = filt(rp), filt(gp)
    var_r = filt(rp * rp) - mu_r ** 2
    var_g = filt(gp * gp) - mu_g ** 2
    cov = filt(rp * gp) - mu_r * mu_g
    s = ((2 * mu_r * mu_g + c1) * (2 * cov + c2)) / ((mu_r ** 2 + mu_g ** 2 + c1) * (var_r + var_g + c2))
    return float(np.mean(s))


def token_agreement(ref, got) -> float:
    r, g = np.asarray(ref), np.asarray(got)
    _check_shapes(r, g)
    return float(np.mean(r == g)) if r.size else 1.0


def flow_smoothness(seq) -> float:
    """Mean magnitude of the second temporal difference along axis 0 (see module docstring)."""
    x = _f64(seq)
    if x.shape[0] < 3:
        return 0.0
    return float(np.mean(np.abs(x[2:] - 2 * x[1:-1] + x[:-2])))


def flow_smoothness_rel(ref, got) -> float:
    fr, fg = flow_smoothness(ref), flow_smoothness(got)
    if fr == 0.0:
        return 0.0 if fg == 0.0 else math.inf
    return abs(fg - fr) / fr


def per_frame_curve(ref_frames, got_frames, peak: float | None = None) -> dict[str, Any]:
    """Per-frame PSNR and SSIM of a video [T,H,W,C] against its reference, with the worst frame."""
    r, g = _f64(ref_frames), _f64(got_frames)
    _check_shapes(r, g)
    peak = data_range(r) if peak is None else peak
    psnr = [psnr_db(r[t], g[t], peak) for t in range(r.shape[0])]
    ss = [ssim(r[t], g[t], peak) for t in range(r.shape[0])]
    worst = int(np.argmin(psnr)) if psnr else 0
    return {"psnr_db": psnr, "ssim": ss, "worst_frame": worst,
            "min_psnr_db": min(psnr) if psnr else math.inf, "min_ssim": min(ss) if ss else 1.0,
            "mean_psnr_db": float(np.mean(np.minimum(psnr, 200.0))) if psnr else math.inf}


def metrics_for(kind: str, ref, got, wanted: tuple[str, ...] = ()) -> dict[str, float]:
    """The metrics that describe an output of this kind (plus any named in `wanted`)."""
    if kind == "indices":
        names = ["token_agreement"]
    elif kind in ("image", "frames"):
        names = ["max_abs", "mean_abs", "psnr_db", "ssim", "cosine"]
    else:
        names = ["max_abs", "mean_abs", "cosine", "sqnr_db"]
    names += [w for w in wanted if w not in names]
    fns = {"max_abs": max_abs, "mean_abs": mean_abs, "cosine": cosine, "sqnr_db": sqnr_db,
           "psnr_db": psnr_db, "ssim": ssim, "token_agreement": token_agreement,
           "flow_smoothness_rel": flow_smoothness_rel, "max_lsb8": max_lsb8, "mean_lsb8": mean_lsb8,
           "bias_lsb8": bias_lsb8}
    out = {}
    for n in names:
        if n not in fns:
            raise ValueError(f"unknown metric {n!r}; known: {', '.join(ALL_METRICS)}")
        out[n] = fns[n](ref, got)
    return out


@dataclass
class Check:
    name: str
    metrics: dict[str, Any]
    passed: bool
    worst: str = ""  # the metric with the least margin (or the first failing one), readable
    tolerance: dict[str, float] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)  # e.g. per-frame curves, call index
    skipped: bool = False  # nothing to compare (e.g. a device dump that was not asked for)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "skipped": self.skipped, "worst": self.worst,
                "metrics": {k: _json_num(v) for k, v in self.metrics.items()},
                "tolerance": dict(self.tolerance), "detail": _json_any(self.detail)}


def _json_num(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return "inf" if v > 0 else ("-inf" if v < 0 else "nan")
    return v


def _json_any(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _json_any(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_any(x) for x in v]
    if isinstance(v, (np.floating, np.integer)):
        v = v.item()
    return _json_num(v)


def judge(metrics: dict[str, float], tol: dict[str, float]) -> tuple[bool, str]:
    """(passed, worst): every bound in `tol` must hold; worst names the tightest metric."""
    if not tol:
        return True, "no tolerance"
    failing, margins = [], []
    for name, bound in tol.items():
        v = metrics.get(name)
        if v is None:
            failing.append(f"{name} not measured")
            continue
        upper = name in UPPER_BOUNDED
        ok = v <= bound if upper else v >= bound
        text = f"{name} {_fmt(v)} ({'≤' if upper else '≥'} {_fmt(bound)})"
        if not ok or (isinstance(v, float) and math.isnan(v)):
            failing.append(text)
        else:  # margin as a ratio: how close to the bound (smaller = tighter)
            if upper:
                m = math.inf if v == 0 else bound / v
            else:
                m = math.inf if math.isinf(v) else (v / bound if bound > 0 else v - bound + 1)
            margins.append((m, text))
    if failing:
        return False, "; ".join(failing)
    return True, min(margins)[1] if margins else "ok"


def _fmt(v: float) -> str:
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    if isinstance(v, float) and (abs(v) < 1e-3 or abs(v) >= 1e4) and v != 0:
        return f"{v:.2e}"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def compare(kind: str, ref, got, tol: dict[str, float] | None = None, *, name: str | None = None) -> Check:
    """Compare `got` against `ref` with the metrics for `kind`, judged by `tol`."""
    tol = dict(tol or {})
    r, g = np.asarray(ref), np.asarray(got)
    if r.shape != g.shape:
        return Check(name or kind, {}, False, f"shape {tuple(g.shape)} != reference {tuple(r.shape)}", tol)
    m = metrics_for(kind, r, g, tuple(tol))
    passed, worst = judge(m, tol)
    return Check(name or kind, m, passed, worst, tol)


def compare_frames(ref_frames, got_frames, tol: dict[str, float] | None = None, *, name: str = "frames") -> Check:
    """End-to-end video check: per-frame PSNR/SSIM curve; bounds apply to the worst frame."""
    tol = dict(tol or {})
    r, g = np.asarray(ref_frames), np.asarray(got_frames)
    if r.shape != g.shape:
        return Check(name, {}, False, f"shape {tuple(g.shape)} != reference {tuple(r.shape)}", tol)
    curve = per_frame_curve(r, g)
    m = {"psnr_db": curve["min_psnr_db"], "ssim": curve["min_ssim"], "mean_psnr_db": curve["mean_psnr_db"],
         "max_abs": max_abs(r, g), "flow_smoothness_ref": flow_smoothness(r),
         "flow_smoothness": flow_smoothness(g), "flow_smoothness_rel": flow_smoothness_rel(r, g)}
    if r.ndim == 4:
        from edgeth.runtime_py.optical_flow import video_flow_smoothness

        m["flow_smoothness_eq13"], m["flow_smoothness_eq13_ref"] = video_flow_smoothness(g), video_flow_smoothness(r)
    passed, worst = judge(m, tol)
    worst = f"{worst} at frame {curve['worst_frame']}"
    return Check(name, m, passed, worst, tol, {"curve": curve})


def worst_row_cosine(ref, got) -> float:
    """The lowest cosine over rows (frames) of two [T, ...] arrays (a whole-array cosine for 1-D)."""
    r, g = _f64(ref), _f64(got)
    _check_shapes(r, g)
    if r.ndim < 2:
        return cosine(r, g)
    return min(cosine(a, b) for a, b in zip(r.reshape(r.shape[0], -1), g.reshape(g.shape[0], -1)))


def stage_quality(spec: Any, ref: Any, got: Any) -> dict[str, float]:
    """One figure set per recorded stage of two pipeline results (kinds from the spec):
    frames -> worst/mean PSNR and min SSIM; indices -> token agreement; any other kind ->
    worst per-frame cosine. Keys are "<stage> <metric>"."""
    out: dict[str, float] = {}
    curve = per_frame_curve(ref.frames, got.frames)
    out.update({"frames min_psnr_db": curve["min_psnr_db"], "frames mean_psnr_db": curve["mean_psnr_db"],
                "frames min_ssim": curve["min_ssim"]})
    for stage in spec.stage_names():
        if stage == "frames" or stage not in ref.extras or stage not in got.extras:
            continue
        kind = spec.stage_kind(stage)
        a, b = np.asarray(ref.extras[stage]), np.asarray(got.extras[stage])
        if a.shape != b.shape:
            continue
        if kind == "indices":
            out[f"{stage} agreement"] = token_agreement(a, b)
        elif kind in ("image", "frames"):
            out[f"{stage} psnr_db"] = psnr_db(a, b)
        else:
            out[f"{stage} min_cosine"] = worst_row_cosine(a, b)
    return out
