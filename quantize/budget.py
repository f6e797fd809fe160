"""Accuracy budgets: a pipeline stage, a metric and a bound (`--budget STAGE:METRIC=BOUND`).

  frames:psnr=35          worst frame of the video, dB (shorthand: psnr=35)
  motion:cosine=0.999     worst per-frame cosine of a continuous stage (motion, latent, ...)
  indices:agreement=0.99  token agreement of a discrete stage

Which metrics a stage takes comes from its kind, declared once in the family's PipelineSpec
(`stages`); a budget naming a stage the pipeline does not record, or a metric its kind does
not take, is an InputError listing what exists. Legacy spellings `cosine=` (motion) and
`tokens=` (indices) still parse.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from edgeth.errors import InputError

if TYPE_CHECKING:
    from edgeth.program import PipelineSpec

# metric -> the tolerance-table key it bounds
TOLERANCE_KEYS = {"psnr": "psnr_db", "cosine": "cosine", "agreement": "token_agreement"}
# shorthand metric -> (default stage, metric)
_SHORTHAND = {"psnr": ("frames", "psnr"), "cosine": ("motion", "cosine"), "tokens": ("indices", "agreement"),
              "agreement": ("indices", "agreement")}
_HINT = "use STAGE:METRIC=BOUND, e.g. frames:psnr=35, motion:cosine=0.999, indices:agreement=0.99 (psnr=35 for frames)"


@dataclass(frozen=True)
class Budget:
    metric: str  # psnr | cosine | agreement ("tokens" is read as agreement)
    bound: float
    stage: str = ""  # the pipeline stage it bounds; "" = the metric's default stage

    def __post_init__(self):
        metric = "agreement" if self.metric == "tokens" else self.metric
        object.__setattr__(self, "metric", metric)
        if not self.stage:
            object.__setattr__(self, "stage", _SHORTHAND.get(metric, ("frames", metric))[0])

    @classmethod
    def parse(cls, text: "str | Mapping[str, Any] | Budget", spec: "PipelineSpec | None" = None) -> "Budget":
        if isinstance(text, Budget):
            return text.for_spec(spec) if spec is not None else text
        if isinstance(text, Mapping):
            if {"stage", "metric", "bound"} <= set(text):
                text = f"{text['stage']}:{text['metric']}={text['bound']}"
            elif len(text) == 1:
                (k, v), = text.items()
                text = f"{k}={v}"
            else:
                raise InputError(f"budget {dict(text)} must name one stage and metric", _HINT)
        key, sep, v = str(text).partition("=")
        stage, colon, metric = key.strip().lower().rpartition(":")
        try:
            bound = float(v)
        except ValueError:
            bound = math.nan
        if not colon:
            if metric not in _SHORTHAND:
                raise InputError(f"bad budget {text!r}", _HINT)
            stage, metric = _SHORTHAND[metric]
        metric = "agreement" if metric == "tokens" else metric
        if not sep or metric not in TOLERANCE_KEYS or not stage or not math.isfinite(bound):
            raise InputError(f"bad budget {text!r}", _HINT)
        if metric != "psnr" and not 0 < bound <= 1:
            raise InputError(f"budget {stage}:{metric}={bound:g} must be in (0, 1]", f"e.g. {stage}:{metric}=0.99")
        b = cls(metric, bound, stage)
        return b.for_spec(spec) if spec is not None else b

    def for_spec(self, spec: "PipelineSpec") -> "Budget":
        """Check the stage exists in `spec` and its kind takes this metric."""
        from edgeth.program import STAGE_METRICS

        stages = spec.stage_names()
        if self.stage not in stages:
            raise InputError(f"budget names stage {self.stage!r}, which pipeline {spec.kind!r} does not record",
                             f"stages: {', '.join(f'{s} ({spec.stage_kind(s)})' for s in stages)}")
        allowed = STAGE_METRICS.get(spec.stage_kind(self.stage), ())
        if self.metric not in allowed:
            raise InputError(f"budget metric {self.metric!r} does not apply to stage {self.stage!r} "
                             f"(kind {spec.stage_kind(self.stage)})", f"use {self.stage}:{'|'.join(allowed)}=...")
        return replace(self)

    @property
    def tolerance_key(self) -> str:
        return TOLERANCE_KEYS[self.metric]

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "metric": self.metric, "bound": self.bound}

    def __str__(self) -> str:
        return f"{self.stage}:{self.metric}={self.bound:g}"

    def output(self, result: Any) -> np.ndarray:
        """The array this budget judges from a PipelineResult: the frames or a recorded stage."""
        if self.stage == "frames":
            return np.asarray(result.frames)
        if self.stage not in result.extras:
            raise InputError(f"budget {self} needs the pipeline's {self.stage!r} output, which this run did not record",
                             "budget a stage the family's pipeline declares")
        return np.asarray(result.extras[self.stage])

    def quality(self, ref: np.ndarray, got: np.ndarray) -> float:
        """The raw metric of `got` against `ref`: the worst frame (psnr, cosine), or agreement."""
        from edgeth.runtime_py import parity

        ref, got = np.asarray(ref), np.asarray(got)
        if ref.shape != got.shape:
            return -math.inf if self.metric == "psnr" else 0.0
        if self.metric == "psnr":
            return float(parity.per_frame_curve(ref, got)["min_psnr_db"]) if ref.ndim == 4 else parity.psnr_db(ref, got)
        if self.metric == "cosine":
            rows = ref.reshape(ref.shape[0], -1) if ref.ndim > 1 else ref[None]
            grows = got.reshape(rows.shape)
            return min(parity.cosine(r, g) for r, g in zip(rows, grows))
        return parity.token_agreement(ref, got)

    def meets(self, value: float) -> bool:
        return value >= self.bound

    def db(self, value: float) -> float:
        from edgeth.quantize.sensitivity import quality_db

        return quality_db(self.metric, value)


def budget_tolerances(budget: "Mapping[str, Any] | None") -> dict[str, dict[str, float]]:
    """{stage: {tolerance key: bound}} of a recorded budget (new or legacy {metric: bound} form)."""
    if not budget:
        return {}
    b = Budget.parse(budget)
    return {b.stage: {b.tolerance_key: float(b.bound)}}
