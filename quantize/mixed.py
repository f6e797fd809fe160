"""Mixed precision under an accuracy budget, judged on the end-to-end output.

`--precision mixed --budget frames:psnr=35` (worst frame; `psnr=35` for short),
`motion:cosine=0.999` (a continuous stage, worst frame) or `indices:agreement=0.99` (a
discrete stage; edgeth.quantize.budget): every program starts fully
INT8; layers are ranked by sensitivity (edgeth.quantize.sensitivity, simulated INT8, no
lowering per trial); the shortest prefix of the ranking kept in float that meets the
budget end-to-end is found by doubling + bisection; then each kept layer is dropped again
if the budget still holds (fewest layers). Optionally the plan is verified on the real
backend (`verify(plans) -> quality`); if the real backend misses, the next-ranked layers
join the float set until it holds (or everything is float).

Reproducible: calibration, simulation and evaluation are deterministic for the same
checkpoint, calibration set and pipeline noise; ties are broken by size and graph order.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from edgeth.errors import InputError
from edgeth.quantize.budget import Budget
from edgeth.quantize.plan import PrecisionPlan
from edgeth.quantize.sensitivity import Config, LayerScore, ProgramSim, all_int8, quality_db, rank_layers

if TYPE_CHECKING:
    from edgeth.program import Program
    from edgeth.quantize.calibrate import CalibrationSet

ProgramCall = Callable[[str, list[np.ndarray]], list[np.ndarray]]


class EndToEnd:
    """Scores a precision config on the pipeline's end-to-end output against the FP32 run.

    `run(call)` drives the whole pipeline (same host code as every backend, fixed noise)
    and returns the array the budget is about: frames [T,H,W,3], motion [T,D] or tokens.
    """

    def __init__(self, programs: Sequence["Program"], sims: Mapping[str, ProgramSim],
                 run: Callable[[ProgramCall], np.ndarray], budget: Budget):
        from edgeth.quantize.calibrate import torch_call

        self.fp32 = torch_call(programs)
        self.sims, self.run, self.budget = sims, run, budget
        self.reference = np.asarray(run(self.fp32))
        self.evaluations = 0
        self._memo: dict[tuple, float] = {}

    def call_for(self, config: Config) -> ProgramCall:
        def call(name: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
            fl = config.get(name)
            if fl is None or name not in self.sims:
                return self.fp32(name, inputs)
            return self.sims[name].run(fl, inputs)

        return call

    def raw(self, config: Config) -> float:
        key = tuple(sorted((p, tuple(sorted(v)) if v is not None else None) for p, v in config.items()))
        if key not in self._memo:
            self.evaluations += 1
            self._memo[key] = self.budget.quality(self.reference, np.asarray(self.run(self.call_for(config))))
        return self._memo[key]

    def __call__(self, config: Config) -> float:  # dB-like, for the sensitivity ranking
        return self.budget.db(self.raw(config))


@dataclass
class MixedResult:
    plans: dict[str, PrecisionPlan]
    budget: Budget
    met: bool
    achieved: float  # simulated end-to-end quality (raw metric)
    full_int8: float
    verified: float | None = None
    ranking: list[LayerScore] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def float_layers(self) -> dict[str, list[str]]:
        return {p: list(pl.float_layers) for p, pl in self.plans.items()}

    def to_json(self) -> dict[str, Any]:
        def num(v):
            return v if v is None or math.isfinite(v) else str(v)

        return {"budget": self.budget.to_json(), "met": self.met, "achieved": num(self.achieved),
                "full_int8": num(self.full_int8), "verified": num(self.verified),
                "float_layers": self.float_layers(), "evaluations": len(self.log), "seconds": round(self.seconds, 1),
                "ranking": [s.to_json() for s in self.ranking[:20]], "log": self.log}


def _config(order: Sequence[LayerScore], k: int, programs: Sequence[str]) -> dict[str, frozenset[str]]:
    cfg: dict[str, set[str]] = {p: set() for p in programs}
    for s in order[:k]:
        cfg[s.program].add(s.unit.name)
    return {p: frozenset(v) for p, v in cfg.items()}


def search_mixed(programs: Sequence["Program"], calib: "CalibrationSet", run: Callable[[ProgramCall], np.ndarray],
                 budget: Budget | str, *, max_samples: int = 32, method: str = "program", rank_samples: int = 4,
                 verify: Callable[[dict[str, PrecisionPlan]], float] | None = None, max_verify: int = 4,
                 quantize: Sequence[str] | None = None, threads: int | None = None,
                 progress: bool = False) -> MixedResult:
    """Find the fewest float layers (over all programs) that keep the end-to-end output within budget.

    `programs` are all the pipeline's programs; `quantize` names those that get INT8 layers
    (default: all); the others stay FP32 (plan precision "fp32"). `threads` sets torch's
    intra-op threads for the search (restored after).
    """
    import torch

    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        return _search(programs, calib, run, budget, max_samples, method, rank_samples, verify, max_verify,
                       quantize, progress)
    finally:
        torch.set_num_threads(old_threads)


def _search(programs, calib, run, budget, max_samples, method, rank_samples, verify, max_verify, quantize,
            progress) -> MixedResult:
    from tqdm import tqdm

    t0 = time.time()
    budget = budget if isinstance(budget, Budget) else Budget.parse(budget)
    names = list(quantize) if quantize is not None else [p.name for p in programs]
    unknown = [n for n in names if n not in {p.name for p in programs}]
    if unknown:
        raise InputError(f"cannot quantize unknown program(s) {', '.join(unknown)}",
                         f"programs: {', '.join(p.name for p in programs)}")
    qprogs = [p for p in programs if p.name in names]
    samples = {p.name: calib.for_program(p.name, max_samples) for p in qprogs}
    sims = {p.name: ProgramSim(p, samples[p.name], progress=progress) for p in
            tqdm(qprogs, desc="calibrate programs", disable=not progress, leave=False)}
    e2e = EndToEnd(programs, sims, run, budget)
    log: list[dict[str, Any]] = []

    def score(cfg: Mapping[str, frozenset[str]], step: str) -> float:
        v = e2e.raw(cfg)
        log.append({"step": step, "float_layers": sum(len(x) for x in cfg.values()), "quality": _num(v),
                    "meets": budget.meets(v)})
        return v

    full = score(all_int8(sims), "all INT8")
    order: list[LayerScore] = []
    if budget.meets(full):
        chosen = all_int8(sims)
        achieved = full
    else:
        few = {p: s[:: max(1, len(s) // rank_samples)][:rank_samples] for p, s in samples.items()}
        order = rank_layers(sims, e2e, method=method, program_samples=few, baseline=budget.db(full), progress=progress)
        # shortest prefix that meets the budget: doubling, then bisection
        n = len(order)
        lo, hi = 0, 1
        while True:
            hi = min(hi, n)
            if budget.meets(score(_config(order, hi, names), f"top {hi} float")) or hi == n:
                break  # (all n float is the FP32 program, which always passes)
            lo, hi = hi, 2 * hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if budget.meets(score(_config(order, mid, names), f"top {mid} float")):
                hi = mid
            else:
                lo = mid
        kept = list(order[:hi])
        # prune: drop layers (least sensitive first) that the budget does not need
        for s in sorted(kept, key=lambda s: s.gain):
            trial = [x for x in kept if x is not s]
            cfg = _config(trial, len(trial), names)
            if budget.meets(score(cfg, f"drop {s.program}:{s.unit.name}")):
                kept = trial
        chosen = _config(kept, len(kept), names)
        achieved = e2e.raw(chosen)

    plans = _with_fp32(_plans(qprogs, sims, chosen, order, budget, calib, samples, full, achieved), programs)
    verified = None
    if verify is not None:
        extra = [s for s in order if s.unit.name not in chosen.get(s.program, ())]
        step = 1
        for attempt in range(max_verify + 1):
            verified = verify(plans)
            log.append({"step": f"verify on backend (attempt {attempt + 1})", "quality": _num(verified),
                        "meets": budget.meets(verified)})
            if budget.meets(verified) or not extra or attempt == max_verify:
                break
            take, extra = extra[:step], extra[step:]  # the real backend missed: float the next-ranked layers
            step *= 2
            chosen = {p: frozenset(set(v) | {s.unit.name for s in take if s.program == p}) for p, v in chosen.items()}
            achieved = e2e.raw(chosen)
            plans = _with_fp32(_plans(qprogs, sims, chosen, order, budget, calib, samples, full, achieved), programs)
    met = budget.meets(verified if verified is not None else achieved)
    return MixedResult(plans, budget, met, achieved, full, verified, order, log, time.time() - t0)


def _with_fp32(plans: dict[str, PrecisionPlan], programs) -> dict[str, PrecisionPlan]:
    for p in programs:  # not searched: FP32
        plans.setdefault(p.name, PrecisionPlan("fp32", notes={"mixed": "kept FP32 (not in the searched programs)"}))
    return plans


def _num(v: float) -> Any:
    return v if math.isfinite(v) else str(v)


def _plans(programs, sims, chosen, order, budget, calib, samples, full, achieved) -> dict[str, PrecisionPlan]:
    why = {(s.program, s.unit.name): (i + 1, s) for i, s in enumerate(order)}
    plans = {}
    for p in programs:
        graph_order = [u.name for u in sims[p.name].units]
        fl = [n for n in graph_order if n in chosen.get(p.name, ())]
        reasons = {}
        for n in fl:
            rank, s = why[(p.name, n)]
            psq = "n/a" if s.program_sqnr is None else f"{s.program_sqnr:.1f} dB"
            reasons[n] = (f"sensitivity rank {rank}: float alone lifts end-to-end {budget.metric} by "
                          f"{s.gain:+.2f} dB-eq (program SQNR then {psq})")
        notes = {"budget": budget.to_json(), "why_float": reasons, "full_int8_quality": _num(full),
                 "simulated_quality": _num(achieved), "calibration_key": calib.key,
                 "calibration_samples": len(samples[p.name]), "units": len(graph_order),
                 "search": "greedy: sensitivity ranking, shortest passing prefix, then prune"}
        plans[p.name] = PrecisionPlan("mixed", tuple(fl), budget.to_json(), calibration=tuple(samples[p.name]),
                                      notes=notes)
    return plans
