"""coreml-sim network ops: conv, linear/matmul, resample (grid_sample), upsample, norms, softmax,
gelu, reductions. Follows the MIL op definitions of coremltools 9.0
(coremltools/converters/mil/mil/ops/defs/iOS15..iOS18): parameter names, defaults, layouts.

Every function takes `p` (the op's parameters: numpy arrays with float16 already widened to
float32, or plain Python values) and returns the output array(s); the interpreter stores each
output in the op's declared MIL dtype (see sim/__init__.py for the precision rules). Products
and sums here run in float32 (BLAS sgemm for conv/linear/matmul).

Shape legend: N batch, C channels (Cin/Cout), G groups, H/W height/width (Ho/Wo output),
K kernel extents, D spatial dims of a conv (1..3).
"""
from __future__ import annotations

import numpy as np

from edgeth.targets.coreml.sim.ops import SimUnsupported, register


def _ints(v, n: int, default: int) -> list[int]:
    return [default] * n if v is None else [int(i) for i in np.asarray(v).reshape(-1)]


def _conv_pads(p, in_sizes, k_eff, strides) -> list[tuple[int, int]]:
    """[(begin, end)] per spatial dim for the MIL pad_type (valid | custom | same | same_lower)."""
    kind = str(p.get("pad_type", "valid"))
    n = len(in_sizes)
    if kind == "valid":
        return [(0, 0)] * n
    if kind == "custom":
        pad = _ints(p.get("pad"), 2 * n, 0)
        return [(pad[2 * i], pad[2 * i + 1]) for i in range(n)]
    if kind in ("same", "same_lower"):
        out = []
        for size, k, s in zip(in_sizes, k_eff, strides):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            small = total // 2
            out.append((small, total - small) if kind == "same" else (total - small, small))
        return out
    raise SimUnsupported(f"conv pad_type {kind!r}")


@register("conv")
def conv(p):
    """x (N,Cin,*D) * weight (Cout,Cin/G,*K) + bias (Cout) -> (N,Cout,*Do); im2col + sgemm per group."""
    x, w = p["x"], p["weight"]
    nd = w.ndim - 2
    strides, dil = _ints(p.get("strides"), nd, 1), _ints(p.get("dilations"), nd, 1)
    groups = int(p.get("groups", 1))
    k_eff = [(k - 1) * d + 1 for k, d in zip(w.shape[2:], dil)]
    x = np.pad(x, [(0, 0), (0, 0)] + _conv_pads(p, x.shape[2:], k_eff, strides))
    axes = tuple(range(2, 2 + nd))
    win = np.lib.stride_tricks.sliding_window_view(x, k_eff, axis=axes)  # (N,Cin,*D',*Keff)
    win = win[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)
              + tuple(slice(None, None, d) for d in dil)]  # (N,Cin,*Do,*K)
    cin, cout = x.shape[1] // groups, w.shape[0] // groups
    outs = []
    for g in range(groups):
        part = win[:, g * cin:(g + 1) * cin]
        wg = w[g * cout:(g + 1) * cout]
        y = np.tensordot(part, wg, axes=([1, *range(2 + nd, 2 + 2 * nd)], [1, *range(2, 2 + nd)]))  # (N,*Do,cout)
        outs.append(y)
    y = np.moveaxis(np.concatenate(outs, axis=-1), -1, 1)
    if p.get("bias") is not None:
        y = y + p["bias"].reshape((1, -1) + (1,) * nd)
    return y


def _pool_windows(p, x, fill: float):
    """Windows (N,C,*Do,*K) of x padded per the MIL pad_type with `fill`, and the pads used."""
    k = [int(v) for v in np.asarray(p["kernel_sizes"]).reshape(-1)]
    nd = len(k)
    strides = _ints(p.get("strides"), nd, 1)
    if p.get("ceil_mode"):
        raise SimUnsupported("pooling with ceil_mode=True")
    pads = _conv_pads(p, x.shape[2:], k, strides)
    xp = np.pad(x, [(0, 0), (0, 0)] + pads, constant_values=fill)
    win = np.lib.stride_tricks.sliding_window_view(xp, k, axis=tuple(range(2, 2 + nd)))
    return win[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)], pads, nd


@register("avg_pool")
def avg_pool(p):
    """Mean over each window; exclude_padding_from_average divides by the real (unpadded) count."""
    x = p["x"]
    win, pads, nd = _pool_windows(p, x, 0.0)
    axes = tuple(range(-nd, 0))
    total = win.sum(axis=axes)
    if p.get("exclude_padding_from_average"):
        ones = np.ones((1, 1) + x.shape[2:], dtype=x.dtype)
        cnt, _, _ = _pool_windows(p, ones, 0.0)
        return total / cnt.sum(axis=axes)
    return total / float(np.prod(win.shape[-nd:]))


@register("max_pool")
def max_pool(p):
    x = p["x"]
    win, _, nd = _pool_windows(p, x, -np.inf)
    return win.max(axis=tuple(range(-nd, 0)))


@register("linear")
def linear(p):
    """x (..., Cin) @ weight (Cout, Cin)^T + bias (Cout)."""
    y = np.matmul(p["x"], p["weight"].T)
    return y + p["bias"] if p.get("bias") is not None else y


@register("matmul")
def matmul(p):
    x, y = p["x"], p["y"]
    if p.get("transpose_x"):
        x = np.swapaxes(x, -1, -2)
    if p.get("transpose_y"):
        y = np.swapaxes(y, -1, -2)
    return np.matmul(x, y)


def _pixel_coords(c, size: int, mode: str, align: bool):
    if mode == "unnormalized":
        return c
    if mode == "normalized_zero_to_one":
        c = c * 2 - 1
    elif mode != "normalized_minus_one_to_one":
        raise SimUnsupported(f"resample coordinates_mode {mode!r}")
    return (c + 1) / 2 * (size - 1) if align else ((c + 1) * size - 1) / 2


def _gather(x, iy, ix, pad_mode: str, pad_value: float):
    """x (N,C,H,W) at integer (iy, ix) (N,Ho,Wo) -> (N,C,Ho,Wo); constant padding outside."""
    n, _, h, w = x.shape
    inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    v = x[np.arange(n)[:, None, None], :, np.clip(iy, 0, h - 1), np.clip(ix, 0, w - 1)]  # (N,Ho,Wo,C)
    if pad_mode == "constant":
        v = np.where(inside[..., None], v, np.float32(pad_value))
    return np.moveaxis(v, -1, 1)


@register("resample")
def resample(p):
    """grid_sample: x (N,C,H,W) at coordinates (N,Ho,Wo,2) [(x, y) per point] -> (N,C,Ho,Wo)."""
    x, coords = p["x"], p["coordinates"]
    mode, pad_mode = str(p.get("sampling_mode", "bilinear")), str(p.get("padding_mode", "constant"))
    if pad_mode not in ("constant", "border"):
        raise SimUnsupported(f"resample padding_mode {pad_mode!r}")
    cmode, align = str(p.get("coordinates_mode", "normalized_minus_one_to_one")), bool(p.get("align_corners", False))
    pad_value = float(p.get("padding_value", 0.0))
    h, w = x.shape[2:]
    fx = _pixel_coords(coords[..., 0], w, cmode, align)
    fy = _pixel_coords(coords[..., 1], h, cmode, align)
    if pad_mode == "border":
        fx, fy = np.clip(fx, 0, w - 1), np.clip(fy, 0, h - 1)
    if mode == "nearest":
        return _gather(x, np.rint(fy).astype(np.int64), np.rint(fx).astype(np.int64), pad_mode, pad_value)
    if mode != "bilinear":
        raise SimUnsupported(f"resample sampling_mode {mode!r}")
    x0, y0 = np.floor(fx), np.floor(fy)
    ax, ay = (fx - x0)[:, None], (fy - y0)[:, None]  # (N,1,Ho,Wo)
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    g = lambda yy, xx: _gather(x, yy, xx, pad_mode, pad_value)  # noqa: E731
    top = g(y0, x0) * (1 - ax) + g(y0, x0 + 1) * ax
    bottom = g(y0 + 1, x0) * (1 - ax) + g(y0 + 1, x0 + 1) * ax
    return top * (1 - ay) + bottom * ay


def _linear_taps(n_in: int, n_out: int, scale: float, align: bool, half_pixel: bool):
    """(i0, i1, weight of i1) per output index along one axis."""
    d = np.arange(n_out, dtype=np.float32)
    if align:
        src = d * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros_like(d)
    elif half_pixel:
        src = np.maximum((d + 0.5) / np.float32(scale) - 0.5, 0)
    else:
        src = d / np.float32(scale)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    return i0, np.minimum(i0 + 1, n_in - 1), (src - i0).astype(np.float32)


@register("upsample_bilinear")
def upsample_bilinear(p):
    """x (..., H, W) -> (..., floor(H*sh), floor(W*sw)); half_pixel_centers defaults to not align_corners."""
    x = p["x"]
    sh, sw = float(p.get("scale_factor_height", 1)), float(p.get("scale_factor_width", 1))
    align = bool(p.get("align_corners", False))
    half = bool(p.get("half_pixel_centers", not align))
    h, w = x.shape[-2:]
    i0, i1, a = _linear_taps(h, int(np.floor(h * sh)), sh, align, half)
    x = x[..., i0, :] * (1 - a)[:, None] + x[..., i1, :] * a[:, None]
    j0, j1, b = _linear_taps(w, int(np.floor(w * sw)), sw, align, half)
    return x[..., j0] * (1 - b) + x[..., j1] * b


@register("upsample_nearest_neighbor")
def upsample_nearest(p):
    x = p["x"]
    sh, sw = float(p.get("scale_factor_height", 1)), float(p.get("scale_factor_width", 1))
    h, w = x.shape[-2:]
    iy = np.minimum((np.arange(int(np.floor(h * sh))) / sh).astype(np.int64), h - 1)
    ix = np.minimum((np.arange(int(np.floor(w * sw))) / sw).astype(np.int64), w - 1)
    return x[..., iy, :][..., ix]


def _normalize(x, axes, eps):
    mean = x.mean(axis=axes, keepdims=True)
    var = np.square(x - mean).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + np.float32(eps))


@register("layer_norm")
def layer_norm(p):
    x = p["x"]
    axes = tuple(int(a) % x.ndim for a in np.asarray(p.get("axes", range(x.ndim))).reshape(-1))
    y = _normalize(x, axes, p.get("epsilon", 1e-5))
    if p.get("gamma") is not None:
        y = y * p["gamma"]
    return y + p["beta"] if p.get("beta") is not None else y


def _per_channel(v, ndim: int):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


@register("instance_norm")
def instance_norm(p):
    x = p["x"]
    y = _normalize(x, tuple(range(2, x.ndim)), p.get("epsilon", 1e-5))
    if p.get("gamma") is not None:
        y = y * _per_channel(p["gamma"], x.ndim)
    return y + _per_channel(p["beta"], x.ndim) if p.get("beta") is not None else y


@register("batch_norm")
def batch_norm(p):
    x = p["x"]
    y = (x - _per_channel(p["mean"], x.ndim)) / np.sqrt(_per_channel(p["variance"], x.ndim) + np.float32(p.get("epsilon", 1e-5)))
    if p.get("gamma") is not None:
        y = y * _per_channel(p["gamma"], x.ndim)
    return y + _per_channel(p["beta"], x.ndim) if p.get("beta") is not None else y


@register("softmax")
def softmax(p):
    x, axis = p["x"], int(p.get("axis", -1))
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@register("gelu")
def gelu(p):
    from scipy.special import erf

    x, mode = p["x"], str(p.get("mode", "EXACT"))
    if mode == "EXACT":
        return 0.5 * x * (1 + erf(x / np.float32(np.sqrt(2))).astype(np.float32))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1 + np.tanh(np.float32(np.sqrt(2 / np.pi)) * (x + np.float32(0.044715) * x ** 3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x / (1 + np.exp(np.float32(-1.702) * x))
    raise SimUnsupported(f"gelu mode {mode!r}")


def _reduce(fn):
    def run(p):
        x = p["x"]
        axes = p.get("axes")
        axes = None if axes is None else tuple(int(a) for a in np.asarray(axes).reshape(-1))
        return fn(x, axis=axes, keepdims=bool(p.get("keep_dims", False)))
    return run


REDUCTIONS = {
    "reduce_mean": np.mean, "reduce_sum": np.sum, "reduce_max": np.max, "reduce_min": np.min,
    "reduce_prod": np.prod,
    "reduce_l2_norm": lambda x, axis, keepdims: np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims)),
    "reduce_sum_square": lambda x, axis, keepdims: np.sum(x * x, axis=axis, keepdims=keepdims),
}
for _name, _fn in REDUCTIONS.items():
    register(_name)(_reduce(_fn))


def _arg_reduce(fn):
    def run(p):
        x, axis = p["x"], int(p.get("axis", -1))
        out = fn(x, axis=axis).astype(np.int32)
        return np.expand_dims(out, axis) if p.get("keep_dims", False) else out
    return run


register("reduce_argmax")(_arg_reduce(np.argmax))
register("reduce_argmin")(_arg_reduce(np.argmin))
