"""The tolerance tables, keyed by (precision, output kind). Copied into every manifest.

Metrics: max_abs / mean_abs (absolute), cosine (min), sqnr_db (min), psnr_db (min, images),
token_agreement (min, indices), max_lsb8 / mean_lsb8 / bias_lsb8 (|got - expected| in 8-bit steps of
the expected output's range, see runtime_py/parity.py). A check passes when every listed
metric meets its bound. Three tables, one question each (quantize/README.md has the why):

  RUNTIME     gate 1, device == host: an artifact against its *own* host outputs on the
              golden inputs (golden/<target>/<program>.npz). Tight, from the precision's
              arithmetic: a runtime or kernel bug fails it whatever the precision.
  QUALITY     gate 2, artifact vs the FP32 PyTorch reference: what the precision may cost,
              at a level users call good. Pipeline stages take the bundle's budget instead
              (`--budget` for mixed; DEFAULT_BUDGETS otherwise), recorded in the manifest.
  TOLERANCES  the fp32 row (exactness) and, for the other precisions, the "broken export"
              floors: an export below them is refused; they never pass a release.
"""
from __future__ import annotations

from typing import Any

# Rows other than fp32 belong to the quantization work (quantize/README.md explains each
# number). They bound what a correct export at that precision must reach against the FP32
# PyTorch reference on the golden calls; they catch broken exports (wrong scales, a kernel
# bug, garbage), they are not quality targets: a mixed plan's quality target is its budget.
# "layer" is the per-layer SQNR floor `edgeth debug` uses to name the first divergence.
_FP16_TENSOR = {"cosine": 0.999, "sqnr_db": 30.0}
_INT8_TENSOR = {"cosine": 0.9, "sqnr_db": 8.0}
_W8_TENSOR = {"cosine": 0.98, "sqnr_db": 14.0}

TOLERANCES: dict[str, dict[str, dict[str, float]]] = {
    "fp32": {
        "image": {"max_abs": 1e-4, "psnr_db": 60.0},
        "motion": {"max_abs": 1e-4},
        "features": {"max_abs": 1e-4},
        "latent": {"max_abs": 1e-4},
        "noise": {"max_abs": 1e-4},
        "tensor": {"max_abs": 1e-4},
        "indices": {"token_agreement": 1.0},
        "frames": {"psnr_db": 60.0},  # end-to-end video vs the PyTorch reference
        "layer": {"sqnr_db": 60.0},
    },
    "fp16": {
        "image": {"psnr_db": 40.0},
        "motion": dict(_FP16_TENSOR), "features": dict(_FP16_TENSOR), "latent": dict(_FP16_TENSOR),
        "noise": dict(_FP16_TENSOR), "tensor": dict(_FP16_TENSOR),
        "indices": {"token_agreement": 0.99},
        "frames": {"psnr_db": 35.0},
        "layer": {"sqnr_db": 30.0},
    },
    "int8": {
        "image": {"psnr_db": 18.0},
        "motion": dict(_INT8_TENSOR), "features": dict(_INT8_TENSOR), "latent": dict(_INT8_TENSOR),
        "noise": dict(_INT8_TENSOR), "tensor": dict(_INT8_TENSOR),
        "indices": {"token_agreement": 0.9},
        "frames": {"psnr_db": 18.0},
        "layer": {"sqnr_db": 12.0},
    },
    "int8-weights": {
        "image": {"psnr_db": 25.0},
        "motion": dict(_W8_TENSOR), "features": dict(_W8_TENSOR), "latent": dict(_W8_TENSOR),
        "noise": dict(_W8_TENSOR), "tensor": dict(_W8_TENSOR),
        "indices": {"token_agreement": 0.95},
        "frames": {"psnr_db": 25.0},
        "layer": {"sqnr_db": 18.0},
    },
    "mixed": {  # per program like int8; frames: the plan's budget replaces this default
        "image": {"psnr_db": 18.0},
        "motion": dict(_INT8_TENSOR), "features": dict(_INT8_TENSOR), "latent": dict(_INT8_TENSOR),
        "noise": dict(_INT8_TENSOR), "tensor": dict(_INT8_TENSOR),
        "indices": {"token_agreement": 0.9},
        "frames": {"psnr_db": 30.0},
        "layer": {"sqnr_db": 12.0},
    },
}


FLOORS = TOLERANCES  # the non-fp32 rows above are the "broken export" floors

# Gate 1 (RUNTIME). An artifact run twice on correct CPU kernels differs only by how the
# kernels round: FP32 by accumulation order (~1e-6 here; the fp32 row's 1e-4 caught the
# XNNPACK tanh-GELU-as-exact-GELU bug, 4.7e-4 off). INT8 by which float ops run between a
# DQ and a Q (ONNX Runtime fuses QDQ into integer kernels at its default level, runs them as
# dequantize-float-quantize with optimizations off, and fuses differently per CPU and
# execution provider): a value rounded to the other side flips by one step of that tensor's
# scale and the flip propagates. Measured, the same ONNX at ORT_ENABLE_ALL (what export
# records) vs ORT_ENABLE_BASIC and ORT_DISABLE_ALL, on the tiny fixtures of all three families
# at int8/int8-weights/mixed, in 8-bit steps of each output's range: mean up to 1.04 (MDCF
# latent denoiser: 37 % of its outputs one scale step = 2.7 such steps off), max up to 9.0 on
# tensors and 53.7 on frames (a warp sampling across an edge, 0.04 % of pixels), bias (the
# largest |mean difference| of one channel/row/frame slice, parity.bias_lsb8) up to 0.84.
# ExecuTorch and ONNX Runtime at 1 and 2 threads were bit-identical. A kernel bug is
# systematic instead: a channel off by 2 steps is a bias of 2 with a tiny mean. So INT8:
# bias <= 1.5 and mean <= 2 steps, max <= 12 steps on tensors and <= 64 on images (a weak
# bound: edges under warping move that far legitimately). A bug that scatters (a few values
# off anywhere) hides inside that spread. FP16: accumulation order and fusions that compute
# in FP32 inside move elements by FP16 ulps: measured (same three levels, all families)
# <= 0.20 steps, mean <= 0.007; so 0.5 max / 0.1 mean. A bug smaller than FP16's own spread
# between kernels (the 4.7e-4 GELU one) hides there.
_RT_INT8 = {"max_lsb8": 12.0, "mean_lsb8": 2.0, "bias_lsb8": 1.5}
_RT_INT8_IMAGE = {"max_lsb8": 64.0, "mean_lsb8": 2.0, "bias_lsb8": 1.5}
_RT_FP16 = {"max_lsb8": 0.5, "mean_lsb8": 0.1}


def _rows(tensor: dict[str, float], indices: dict[str, float], image: dict | None = None) -> dict[str, dict[str, float]]:
    image = tensor if image is None else image
    return {"image": dict(image), "frames": dict(image), **{k: dict(tensor) for k in _TENSOR_KINDS},
            "indices": dict(indices)}


_TENSOR_KINDS = ("motion", "features", "latent", "noise", "tensor")
RUNTIME: dict[str, dict[str, dict[str, float]]] = {
    "fp32": _rows({"max_abs": 1e-4}, {"token_agreement": 1.0}),
    "fp16": _rows(_RT_FP16, {"token_agreement": 0.999}),
    "int8": _rows(_RT_INT8, {"token_agreement": 0.999}, _RT_INT8_IMAGE),  # a token in 1000 (ties before rounding)
    "int8-weights": _rows(_RT_INT8, {"token_agreement": 0.999}, _RT_INT8_IMAGE),  # activations requantized per call
    "mixed": _rows(_RT_INT8, {"token_agreement": 0.999}, _RT_INT8_IMAGE),
}

# Gate 2 (QUALITY), vs the FP32 reference. 30 dB worst frame is where lossy video reads as
# good (the PSNR of ±0.5/255 input noise through the renderer probe; a typical good-quality
# JPEG/H.264 frame sits at 30-40 dB); cosine 0.99 for continuous stages (an angle of 8° in
# the motion/latent code: measured INT8 ports of correct programs sit at 0.999+, a code at
# 0.9 visibly drifts); 99 % token agreement (one token in 100 may flip at a rounding tie).
# FP16 keeps ~11 bits (41 dB measured on the renderer probe), so its row is the fp16 one:
# already a quality bound. FP32 is exactness.
_Q_TENSOR = {"cosine": 0.99}
_Q_INDICES = {"token_agreement": 0.99}
_Q_IMAGE = {"psnr_db": 30.0}
QUALITY: dict[str, dict[str, dict[str, float]]] = {
    "fp32": {k: dict(v) for k, v in TOLERANCES["fp32"].items() if k != "layer"},
    "fp16": {k: dict(v) for k, v in TOLERANCES["fp16"].items() if k != "layer"},
    "int8": _rows(_Q_TENSOR, _Q_INDICES, _Q_IMAGE),
    "int8-weights": _rows(_Q_TENSOR, _Q_INDICES, _Q_IMAGE),
    "mixed": _rows(_Q_TENSOR, _Q_INDICES, _Q_IMAGE),
}


def _lookup(table: dict[str, dict[str, dict[str, float]]], precision: str, kind: str) -> dict[str, float]:
    row = table.get(precision) or table["fp32"]
    return dict(row.get(kind) or row["tensor"])


def tolerance_for(precision: str, kind: str) -> dict[str, float]:
    """The fp32 row, or a precision's "broken export" floor (what `edgeth export` refuses)."""
    return _lookup(TOLERANCES, precision, kind)


def runtime_for(precision: str, kind: str) -> dict[str, float]:
    """Gate 1: an artifact against its own host outputs."""
    return _lookup(RUNTIME, precision, kind)


def quality_for(precision: str, kind: str) -> dict[str, float]:
    """Gate 2: an artifact against the FP32 reference (a stage's budget overrides it)."""
    return _lookup(QUALITY, precision, kind)


def table_json() -> dict[str, Any]:
    return {p: {k: dict(v) for k, v in kinds.items()} for p, kinds in TOLERANCES.items()}


def gates_json() -> dict[str, Any]:
    """The gate tables as copied into a manifest (`gates`)."""
    return {name: {p: {k: dict(v) for k, v in kinds.items()} for p, kinds in table.items()}
            for name, table in (("runtime", RUNTIME), ("quality", QUALITY))}
