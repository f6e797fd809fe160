"""Token parity for discrete (indices) outputs: pure numpy, no runtime imports.

A flipped token changes every frame rendered from it, so a token stage needs more than one
agreement number:

  token_agreement_detail(ref, got)   overall, per group and per residual layer agreement of
                                     indices [n, G, R], and the first frame that differs
  near_fsq_boundary(pre, precision)  how many pre-rounding FSQ values (level units, a rounding
                                     boundary at every half-integer) lie within one step of
                                     `precision` of a boundary: the flips waiting to happen
  near_argmax_tie(logits, precision) how many argmax decisions have a top-1 / top-2 margin
                                     within one step of `precision`
  token_report(...)                  all of it, per precision, as one JSON-able dict
  stage_token_detail(bundle, stage, ref, got)
                                     token_report of a pipeline stage of kind "indices" (what
                                     `edgeth verify` attaches to quality/pipeline/<stage>):
                                     near-boundary counts over the golden calls of the program
                                     outputs the PipelineSpec names for it, in
                                     extra["token_parity"][stage] = {"pre": host value,
                                     "logits": host value} (host values of the spec's io)

Steps: fp32 / fp16 the value's own spacing (np.spacing at that dtype, times 2 for the two
operands of a comparison); int8 one quantization step of a per-tensor symmetric INT8 scale
of the compared tensor (max |x| / 127); int8-weights and mixed are read as int8 (a bound).
Shape legend: n frames, G groups, R residual layers, d FSQ dims, K codes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

PRECISIONS = ("fp32", "fp16", "int8")


def token_agreement_detail(ref, got) -> dict[str, Any]:
    r, g = np.asarray(ref), np.asarray(got)
    if r.shape != g.shape:
        raise ValueError(f"token shapes differ: {r.shape} vs {g.shape}")
    eq = (r == g)
    if eq.ndim == 1:
        eq = eq[:, None, None]
    elif eq.ndim == 2:
        eq = eq[:, :, None]
    frames_ok = eq.reshape(eq.shape[0], -1).all(1)
    bad = np.nonzero(~frames_ok)[0]
    return {"agreement": float(eq.mean()) if eq.size else 1.0,
            "per_group": eq.mean(axis=(0, 2)).astype(float).tolist(),
            "per_layer": eq.mean(axis=(0, 1)).astype(float).tolist(),
            "frames_equal": float(frames_ok.mean()) if frames_ok.size else 1.0,
            "first_diverging_frame": int(bad[0]) if bad.size else None}


def _step(x: np.ndarray, precision: str) -> np.ndarray | float:
    p = "int8" if precision in ("int8", "int8-weights", "mixed") else precision
    if p == "fp32":
        return 2 * np.spacing(np.abs(x).astype(np.float32))
    if p == "fp16":
        return 2 * np.spacing(np.abs(x).astype(np.float16)).astype(np.float64)
    if p == "int8":
        return float(np.max(np.abs(x))) / 127.0 if x.size else 0.0
    raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}, int8-weights, mixed")


def near_fsq_boundary(pre, precision: str) -> int:
    """Pre-rounding values within one `precision` step of a rounding boundary (x.5)."""
    x = np.asarray(pre, np.float64)
    dist = np.abs(x - (np.floor(x) + 0.5))
    return int(np.sum(dist < _step(x, precision)))


def near_argmax_tie(logits, precision: str) -> int:
    """argmax decisions over the last axis whose top-1 / top-2 margin is within one step."""
    x = np.asarray(logits, np.float64)
    top2 = np.partition(x, -2, axis=-1)[..., -2:]
    margin = top2[..., 1] - top2[..., 0]
    step = _step(top2[..., 1], precision) if precision in ("fp32", "fp16") else _step(x, precision)
    return int(np.sum(margin < step))


def token_report(ref, got, *, pre=None, logits=None, precisions: tuple[str, ...] = PRECISIONS) -> dict[str, Any]:
    """Agreement detail of `got` vs `ref` plus near-boundary / near-tie counts of the reference's
    pre-rounding values and logits, per precision."""
    out = token_agreement_detail(ref, got)
    near: dict[str, dict[str, int]] = {}
    for p in precisions:
        row = {}
        if pre is not None:
            row["fsq_boundary"] = near_fsq_boundary(pre, p)
            row["fsq_values"] = int(np.asarray(pre).size)
        if logits is not None:
            row["argmax_ties"] = near_argmax_tie(logits, p)
            row["argmax_decisions"] = int(np.asarray(logits).size // np.asarray(logits).shape[-1])
        near[p] = row
    out["near_boundary"] = near
    return out


def _golden_output(bundle, spec, value: str) -> np.ndarray | None:
    """Every golden call's copy of the program output wired to host value `value`, stacked."""
    for program, wiring in spec.io.items():
        outs = wiring.get("outputs", [])
        if value in outs and program in spec.programs:
            j = outs.index(value)
            calls = bundle.golden_calls(program)
            return np.stack([np.asarray(o[j]) for _, o in calls]) if calls else None
    return None


def stage_token_detail(bundle, stage: str, ref, got) -> dict[str, Any]:
    """token_report of stage `stage` (ref / got indices) with the near-boundary sources the
    bundle's PipelineSpec names for it (none named: agreement detail only)."""
    spec = bundle.pipeline_spec()
    sources = ((spec.extra.get("token_parity") or {}).get(stage) or {})
    kw = {arg: _golden_output(bundle, spec, sources[arg]) for arg in ("pre", "logits") if sources.get(arg)}
    rep = token_report(ref, got, **{k: v for k, v in kw.items() if v is not None})
    rep["near_boundary_of"] = {k: sources[k] for k, v in kw.items() if v is not None}
    return rep
