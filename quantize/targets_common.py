"""What every target's quantizer.py needs from a PrecisionPlan: calibration samples, the
float layers (plan + the program's float_only), validation, and the common report block.

The target quantizers (edgeth.targets.<t>.quantizer) stay thin: they pick the stage and
the tool; the rules live here once.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from edgeth.errors import InputError, UnsupportedOp
from edgeth.quantize.plan import PRECISIONS

if TYPE_CHECKING:
    from edgeth.program import Program
    from edgeth.quantize.plan import PrecisionPlan

MAX_CALIBRATION = 64  # calibration samples used per program (evenly spaced over the captured calls)


def precision(plan: "PrecisionPlan | None") -> str:
    return "fp32" if plan is None else plan.precision


def require(plan: "PrecisionPlan | None", target: str, supported: Sequence[str]) -> str:
    p = precision(plan)
    if p not in PRECISIONS:
        raise InputError(f"unknown precision {p!r}", f"choose one of: {', '.join(PRECISIONS)}")
    if p not in supported:
        raise UnsupportedOp(f"precision {p} is not available for target {target}",
                            f"{target} supports: {', '.join(supported)}")
    return p


def calibration(program: "Program", plan: "PrecisionPlan | None",
                limit: int = MAX_CALIBRATION) -> tuple[list[tuple[np.ndarray, ...]], str]:
    """(input tuples, source): the plan's captured calibration, or the example inputs (noted)."""
    cal = list(plan.calibration) if plan is not None else []
    if cal:
        n = len(program.inputs)
        bad = [i for i, s in enumerate(cal) if len(s) != n]
        if bad:
            raise InputError(f"calibration sample {bad[0]} for {program.name} has {len(cal[bad[0]])} inputs, "
                             f"the program takes {n}", "re-capture calibration for this checkpoint")
        if len(cal) > limit:
            idx = np.unique(np.round(np.linspace(0, len(cal) - 1, limit)).astype(int))
            cal = [cal[i] for i in idx]
        return [tuple(np.asarray(x) for x in s) for s in cal], f"pipeline capture ({len(cal)} samples)"
    ex = tuple(x.detach().cpu().numpy() for x in program.example_inputs)
    return [ex], "example inputs only (no calibration set given: expect worse INT8 accuracy)"


def float_layers(program: "Program", plan: "PrecisionPlan | None") -> tuple[str, ...]:
    """Layers that stay float: the plan's (mixed) plus the program's float_only (always)."""
    extra = tuple(plan.float_layers) if plan is not None and plan.precision in ("mixed", "int8") else ()
    return tuple(dict.fromkeys((*extra, *program.float_only)))


def base_report(program: "Program", plan: "PrecisionPlan | None", scheme: str, source: str | None = None,
                **extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"precision": precision(plan), "scheme": scheme}
    if source is not None:
        r["calibration"] = source
    if plan is not None and plan.float_layers:
        r["float_layers"] = list(plan.float_layers)
    if program.float_only:
        r["float_only"] = list(program.float_only)
    if plan is not None and plan.budget:
        r["budget"] = dict(plan.budget)
    if plan is not None and plan.notes.get("why_float"):
        r["why_float"] = dict(plan.notes["why_float"])
    r.update(extra)
    return r


def pt2e_quantized(program: "Program", ep: Any, plan: "PrecisionPlan | None", mode: str = "static") -> Any:
    """The program's PT2E-quantized module (prepare -> calibrate -> convert) for this plan.

    Quantized once per program, plan and mode, and handed out as a copy (callers edit it):
    ExecuTorch and Core ML W8A8 quantize the same program with the same XNNPACK quantizer, so
    a joint export calibrates it once, and both targets get the same INT8 graph."""
    import copy

    from edgeth.quantize.pt2e import quantize_exported
    from edgeth.targets.common import plan_key
    from edgeth.targets.preflight import memo

    fl = float_layers(program, plan)

    def build() -> Any:
        samples = calibration(program, plan)[0] if mode == "static" else []
        return quantize_exported(ep, samples, mode=mode, float_layers=fl)

    return copy.deepcopy(memo(program, f"pt2e.{mode}:{plan_key(plan)}:{','.join(fl)}", build))
