"""The one tolerance table, keyed by (precision, output kind). Copied into every manifest.

Metrics: max_abs / mean_abs (absolute), cosine (min), sqnr_db (min), psnr_db (min, images),
token_agreement (min, indices). A check passes when every listed metric meets its bound.
The quantization issue fills in fp16/int8/mixed rows; see quantize/README.md.
"""
from __future__ import annotations

from typing import Any

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
    },
}


def tolerance_for(precision: str, kind: str) -> dict[str, float]:
    table = TOLERANCES.get(precision) or TOLERANCES["fp32"]
    return dict(table.get(kind) or table["tensor"])


def table_json() -> dict[str, Any]:
    return {p: {k: dict(v) for k, v in kinds.items()} for p, kinds in TOLERANCES.items()}
