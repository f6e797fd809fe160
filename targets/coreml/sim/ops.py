"""coreml-sim op table: MIL op type -> numpy function. Follows the MIL op definitions of
coremltools 9.0 (coremltools/converters/mil/mil/ops/defs/iOS15..iOS18): parameter names,
defaults, broadcasting (numpy rules, as MIL's), quantization formulas.

This module holds the registry and the elementwise, tensor-shape, cast and quantization ops;
ops_nn.py holds conv/linear/matmul/resample/upsample/norms/softmax/gelu/reductions. Adding an
op is one entry: a line in UNARY/BINARY, or a `@register("op_type")` function taking the
op's parameters `p` (dict: numpy arrays, float16 widened to float32, or Python values) and
returning its output (a tuple for multi-output ops). Unknown op types never reach here: the
interpreter refuses them at load, naming the op and the program.

Shape legend: x/y inputs of any rank; `axis` may be negative (numpy convention, as MIL).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

OPS: dict[str, Callable[[dict[str, Any]], Any]] = {}

# The contract: every MIL op edgeth's registered families (IF-MDM; MDCF adds avg_pool) and the test fixture programs
# emit at fp32, fp16, int8-weights, int8 and mixed (the union of the exporter's `mil_ops`,
# measured with coremltools 9.0). A family that emits a new op adds it here and to the table.
CONTRACT = (
    "add", "avg_pool", "cast", "clip", "concat", "const", "constexpr_affine_dequantize", "conv", "cos", "dequantize",
    "expand_dims", "gelu", "layer_norm", "leaky_relu", "linear", "log", "matmul", "mul", "pad", "quantize",
    "reduce_mean", "relu", "resample", "reshape", "rsqrt", "sigmoid", "silu", "sin", "slice_by_index", "softmax",
    "split", "squeeze", "sub", "tanh", "tile", "transpose", "upsample_bilinear",
)

# MIL dtype names (cast's `dtype`, quantize's `output_dtype`) -> numpy
DTYPES = {"fp16": np.float16, "fp32": np.float32, "fp64": np.float64, "int8": np.int8, "uint8": np.uint8,
          "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "int64": np.int64, "bool": np.bool_}


class SimUnsupported(Exception):
    """An op variant (mode, padding, dtype) coreml-sim does not implement; never skipped."""


def register(*names: str):
    def deco(fn):
        for n in names:
            OPS[n] = fn
        return fn
    return deco


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


UNARY: dict[str, Callable[[Any, dict], Any]] = {
    "identity": lambda x, p: x,
    "relu": lambda x, p: np.maximum(x, 0),
    "relu6": lambda x, p: np.clip(x, 0, 6),
    "sigmoid": lambda x, p: _sigmoid(x),
    "tanh": lambda x, p: np.tanh(x),
    "silu": lambda x, p: x * _sigmoid(x),
    "softplus": lambda x, p: np.logaddexp(x, 0),
    "sin": lambda x, p: np.sin(x),
    "cos": lambda x, p: np.cos(x),
    "exp": lambda x, p: np.exp(x),
    "exp2": lambda x, p: np.exp2(x),
    "abs": lambda x, p: np.abs(x),
    "sign": lambda x, p: np.sign(x),
    "floor": lambda x, p: np.floor(x),
    "ceil": lambda x, p: np.ceil(x),
    "round": lambda x, p: np.rint(x),
    "square": lambda x, p: x * x,
    "sqrt": lambda x, p: np.sqrt(x),
    "erf": lambda x, p: __import__("scipy.special", fromlist=["erf"]).erf(x),
    "logical_not": lambda x, p: np.logical_not(x),
    "log": lambda x, p: np.log(x + np.float32(p.get("epsilon", 1e-45))),
    "rsqrt": lambda x, p: 1 / np.sqrt(x + np.float32(p.get("epsilon", 1e-12))),
    "inverse": lambda x, p: 1 / (x + np.float32(p.get("epsilon", 1e-4))),
    "leaky_relu": lambda x, p: np.where(x >= 0, x, x * np.float32(p.get("alpha", 0.01))),
    "elu": lambda x, p: np.where(x > 0, x, np.float32(p.get("alpha", 1.0)) * (np.exp(x) - 1)),
    "clip": lambda x, p: np.minimum(np.maximum(x, np.float32(p["alpha"])), np.float32(p["beta"])),
}

BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "real_div": np.divide, "pow": np.power,
    "maximum": np.maximum, "minimum": np.minimum, "floor_div": np.floor_divide, "mod": np.mod,
    "equal": np.equal, "not_equal": np.not_equal, "greater": np.greater, "greater_equal": np.greater_equal,
    "less": np.less, "less_equal": np.less_equal, "logical_and": np.logical_and, "logical_or": np.logical_or,
    "logical_xor": np.logical_xor,
}

for _n, _f in UNARY.items():
    register(_n)((lambda f: lambda p: f(p["x"], p))(_f))
for _n, _f in BINARY.items():
    register(_n)((lambda f: lambda p: f(p["x"], p["y"]))(_f))


@register("select")
def select(p):
    return np.where(p["cond"], p["a"], p["b"])


@register("cast")
def cast(p):
    dtype = str(p["dtype"])
    if dtype not in DTYPES:
        raise SimUnsupported(f"cast to {dtype!r}")
    return np.asarray(p["x"]).astype(DTYPES[dtype])


def _axes(v) -> list[int]:
    return [int(a) for a in np.asarray(v).reshape(-1)]


@register("reshape")
def reshape(p):
    """`shape` entries: -1 is inferred, 0 copies the input's dimension (MIL iOS17 reshape)."""
    x = p["x"]
    shape = [x.shape[i] if s == 0 else s for i, s in enumerate(_axes(p["shape"]))]
    return x.reshape(shape)


@register("transpose")
def transpose(p):
    return np.transpose(p["x"], _axes(p["perm"]))


@register("expand_dims")
def expand_dims(p):
    x = p["x"]
    rank = x.ndim + len(_axes(p["axes"]))
    return np.expand_dims(x, tuple(sorted(a % rank for a in _axes(p["axes"]))))


@register("squeeze")
def squeeze(p):
    x = p["x"]
    if p.get("axes") is None:
        return np.squeeze(x)
    return np.squeeze(x, tuple(a % x.ndim for a in _axes(p["axes"]))) if x.ndim else x


@register("concat")
def concat(p):
    vals = [np.asarray(v) for v in p["values"]]
    if p.get("interleave"):
        raise SimUnsupported("concat interleave=True")
    return np.concatenate(vals, axis=int(p["axis"]))


@register("stack")
def stack(p):
    return np.stack([np.asarray(v) for v in p["values"]], axis=int(p["axis"]))


@register("split")
def split(p):
    x, axis = p["x"], int(p.get("axis", 0))
    if p.get("split_sizes") is not None:
        return tuple(np.split(x, np.cumsum(_axes(p["split_sizes"]))[:-1], axis=axis))
    return tuple(np.split(x, int(p["num_splits"]), axis=axis))


@register("slice_by_index")
def slice_by_index(p):
    """x[begin:end:stride] per axis; begin_mask/end_mask ignore begin/end, squeeze_mask indexes."""
    x = p["x"]
    n = x.ndim
    begin, end = _axes(p["begin"]), _axes(p["end"])
    stride = _axes(p["stride"]) if p.get("stride") is not None else [1] * n
    masks = [list(np.asarray(p[k]).reshape(-1)) if p.get(k) is not None else [False] * n
             for k in ("begin_mask", "end_mask", "squeeze_mask")]
    index: list[Any] = []
    for i in range(n):
        if masks[2][i]:
            index.append(begin[i])
            continue
        index.append(slice(None if masks[0][i] else begin[i], None if masks[1][i] else end[i], stride[i]))
    return x[tuple(index)]


@register("slice_by_size")
def slice_by_size(p):
    x = p["x"]
    begin, size = _axes(p["begin"]), _axes(p["size"])
    return x[tuple(slice(b, None if s == -1 else b + s) for b, s in zip(begin, size))]


@register("tile")
def tile(p):
    return np.tile(p["x"], _axes(p["reps"]))


@register("pad")
def pad(p):
    """`pad` (2k,) = (begin, end) for the last k axes; mode constant | reflect | replicate."""
    x, pads = p["x"], _axes(p["pad"])
    k = len(pads) // 2
    width = [(0, 0)] * (x.ndim - k) + [(pads[2 * i], pads[2 * i + 1]) for i in range(k)]
    mode = str(p.get("mode", "constant"))
    if mode == "constant":
        return np.pad(x, width, constant_values=np.float32(p.get("constant_val", 0.0)))
    if mode in ("reflect", "replicate"):
        return np.pad(x, width, mode={"reflect": "reflect", "replicate": "edge"}[mode])
    raise SimUnsupported(f"pad mode {mode!r}")


@register("gather")
def gather(p):
    return np.take(p["x"], np.asarray(p["indices"]).astype(np.int64), axis=int(p.get("axis", 0)))


@register("gather_along_axis")
def gather_along_axis(p):
    return np.take_along_axis(p["x"], np.asarray(p["indices"]).astype(np.int64), axis=int(p.get("axis", 0)))


def _along(v, ndim: int, axis) -> Any:
    """A per-axis scale/zero point (vector) broadcast against a rank-`ndim` tensor at `axis`."""
    v = np.asarray(v)
    if v.ndim != 1 or axis is None or ndim == 0:
        return v
    shape = [1] * ndim
    shape[int(axis) % ndim] = v.size
    return v.reshape(shape)


def _zero_point(p, key: str, ndim: int, axis):
    zp = p.get(key)
    return np.float32(0) if zp is None else _along(np.asarray(zp).astype(np.float32), ndim, axis)


@register("quantize")
def quantize(p):
    """iOS17: clip(round_half_even(x / scale) + zero_point) in output_dtype (int8 | uint8)."""
    x, axis = p["input"], p.get("axis")
    dtype = DTYPES.get(str(p["output_dtype"]))
    if dtype not in (np.int8, np.uint8):
        raise SimUnsupported(f"quantize output_dtype {p['output_dtype']!r}")
    q = np.rint(x / _along(p["scale"], x.ndim, axis)) + _zero_point(p, "zero_point", x.ndim, axis)
    info = np.iinfo(dtype)
    return np.clip(q, info.min, info.max).astype(dtype)


@register("dequantize")
def dequantize(p):
    """iOS17: (input - zero_point) * scale."""
    q, axis = np.asarray(p["input"]).astype(np.float32), p.get("axis")
    return (q - _zero_point(p, "zero_point", q.ndim, axis)) * _along(p["scale"], q.ndim, axis)


@register("constexpr_affine_dequantize")
def constexpr_affine_dequantize(p):
    """iOS16 weight decompression: (quantized_data - zero_point) * scale along `axis`."""
    q, axis = np.asarray(p["quantized_data"]).astype(np.float32), p["axis"]
    return (q - _zero_point(p, "zero_point", q.ndim, axis)) * _along(p["scale"], q.ndim, axis)


def _blockwise(v, shape) -> np.ndarray:
    """Repeat a blockwise scale/offset (same rank as data, each dim dividing it) up to `shape`."""
    v = np.asarray(v)
    for i, (have, want) in enumerate(zip(v.shape, shape)):
        if have != want:
            v = np.repeat(v, want // have, axis=i)
    return v


@register("constexpr_blockwise_shift_scale")
def constexpr_blockwise_shift_scale(p):
    """iOS18 weight decompression: (data - offset) * scale, scale/offset blockwise."""
    data = np.asarray(p["data"]).astype(np.float32)
    if p.get("offset") is not None:
        data = data - _blockwise(p["offset"], data.shape).astype(np.float32)
    return data * _blockwise(p["scale"], data.shape).astype(np.float32)


# the network ops register themselves into OPS (ops_nn imports register/SimUnsupported from here)
from edgeth.targets.coreml.sim import ops_nn  # noqa: E402,F401
