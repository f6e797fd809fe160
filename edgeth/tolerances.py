"""The one tolerance table, keyed by (precision, output kind). Copied into every manifest.

Metrics: max_abs / mean_abs (absolute), cosine (min), sqnr_db (min), psnr_db (min, images),
token_agreement (min, indices). A check passes when every listed metric meets its bound.
Rows per precision: fp32 (exactness) and fp16 / int8 / int8-weights / mixed (see
quantize/README.md for why each bound is what it is).
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


def tolerance_for(precision: str, kind: str) -> dict[str, float]:
    table = TOLERANCES.get(precision) or TOLERANCES["fp32"]
    return dict(table.get(kind) or table["tensor"])


def table_json() -> dict[str, Any]:
    return {p: {k: dict(v) for k, v in kinds.items()} for p, kinds in TOLERANCES.items()}
