"""Per-layer INT8 sensitivity, measured with simulated quantization in PyTorch eager.

A `ProgramSim` calibrates a program once (PT2E, XNNPACK quantizer) and then builds the
fake-quant graph for any set of float layers in about half a second, with no lowering
(see edgeth.quantize.pt2e.Calibrated). `rank_layers` orders every layer by how much
keeping it float lifts the end-to-end quality (an `evaluate(config)` callback: the
generated video, motion codes or tokens against the FP32 reference): cheaply from each
program's share of the end-to-end error times the layer's share of its program's error
("program"), or exactly with one pipeline run per layer ("float_one": that layer alone
float; "quant_one": that layer alone INT8).

Qualities are compared on a dB-like scale (`quality_db`): PSNR as is, cosine and token
agreement as -10*log10(1 - value), so gains add up across metrics and programs.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from edgeth.quantize.pt2e import Calibrated, Unit, to_torch_inputs

if TYPE_CHECKING:
    from edgeth.program import Program

# config: program name -> the float layers of that program (None: the program runs in FP32)
Config = Mapping[str, "frozenset[str] | None"]


def quality_db(metric: str, value: float) -> float:
    """Map a quality metric onto a dB-like scale where larger is better and gains add up."""
    if metric == "psnr":
        return float(value)
    if math.isnan(value):
        return -math.inf
    gap = max(1.0 - float(value), 0.0)
    return math.inf if gap == 0 else -10.0 * math.log10(gap)


class ProgramSim:
    """Fake-quant versions of one program, built on demand and cached by float-layer set."""

    def __init__(self, program: "Program", samples: Sequence[Sequence[Any]], *, mode: str = "static",
                 progress: bool = False):
        self.program = program
        self.always_float = tuple(program.float_only)
        self.cal = Calibrated(program.module, program.example_inputs, samples, mode=mode, progress=progress,
                              desc=f"calibrate {program.name}")
        self._cache: dict[frozenset[str], Any] = {}
        self._ref: dict[int, tuple[Any, list[np.ndarray]]] = {}  # id(sample) -> (sample kept alive, FP32 outputs)
        self._unfolded = None  # all-INT8 graph with weight quantize nodes kept (for unit_float)

    @property
    def units(self) -> list[Unit]:
        from edgeth.quantize.pt2e import matches

        return [u for u in self.cal.units if not any(matches(e, u.node, u.module_path) for e in self.always_float)]

    def module(self, float_layers: Iterable[str] = ()):
        key = frozenset(float_layers)
        if key not in self._cache:
            if len(self._cache) > 64:  # bound memory on long searches
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = self.cal.convert(sorted(key | set(self.always_float)))
        return self._cache[key]

    @contextlib.contextmanager
    def unit_float(self, unit: Unit):
        """A fast approximation of "this unit alone float" for ranking: the all-INT8 graph with the
        unit's inputs (weight and activations) rewired around their quantize/dequantize pairs,
        and its output read in float by every consumer that is not a quantized layer. No
        prepare/convert per trial; the search itself evaluates real variants."""
        if self._unfolded is None:
            self._unfolded = self.cal.convert(list(self.always_float), fold=False)
        from edgeth.quantize.pt2e import is_quantize, op_kinds

        gm = self._unfolded
        node = next((n for n in gm.graph.nodes if n.name == unit.node), None)
        saved: list[tuple[Any, tuple]] = []
        if node is not None:
            saved.append((node, tuple(node.args)))
            node.args = tuple(_float_source(a) for a in node.args)
            # its output stays INT8 only where a quantized layer reads it (as in a real variant)
            kinds = op_kinds()
            for q in [u for u in node.users if is_quantize(u)]:
                for dq in list(q.users):
                    for c in list(dq.users):
                        if c.op == "call_function" and c.target not in kinds:
                            saved.append((c, tuple(c.args)))
                            c.replace_input_with(dq, node)
            gm.recompile()
        try:
            yield gm
        finally:
            for n, args in reversed(saved):
                n.args = args
            if saved:
                gm.recompile()

    def run(self, float_layers: Iterable[str], inputs: Sequence[Any]) -> list[np.ndarray]:
        import torch

        with torch.no_grad():
            out = self.module(float_layers)(*to_torch_inputs(inputs))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return [o.detach().cpu().numpy() for o in outs]

    def program_sqnr(self, float_layers: Iterable[str], samples: Sequence[Sequence[Any]], module: Any = None) -> float:
        """SQNR (dB) of the program's outputs against FP32 over `samples` (all outputs pooled);
        `module` replaces the float_layers variant (e.g. a `unit_float` graph)."""
        import torch

        sig = noise = 0.0
        for s in samples:
            key = id(s)
            if key not in self._ref:  # FP32 outputs, computed once per sample
                with torch.no_grad():
                    ref = self.program.module(*to_torch_inputs(s))
                refs = ref if isinstance(ref, (tuple, list)) else (ref,)
                self._ref[key] = (s, [r.detach().cpu().numpy().astype(np.float64) for r in refs])
            refs = self._ref[key][1]
            if module is None:
                got = self.run(float_layers, s)
            else:
                with torch.no_grad():
                    out = module(*to_torch_inputs(s))
                got = [o.detach().cpu().numpy() for o in (out if isinstance(out, (tuple, list)) else (out,))]
            for r, g in zip(refs, got):
                sig += float(np.sum(r * r))
                noise += float(np.sum((r - g) ** 2))
        return math.inf if noise == 0 else 10 * math.log10(max(sig, 1e-30) / noise)


@dataclass
class LayerScore:
    program: str
    unit: Unit
    quality: float  # end-to-end quality (dB-like) in this trial
    gain: float  # vs the all-INT8 baseline ("float_one") or vs FP32 loss ("quant_one")
    program_sqnr: float | None = None

    def to_json(self) -> dict[str, Any]:
        def num(v):
            return v if v is None or math.isfinite(v) else str(v)

        return {"program": self.program, **self.unit.to_json(), "quality_db": num(self.quality),
                "gain_db": num(self.gain), "program_sqnr_db": num(self.program_sqnr)}


def all_int8(sims: Mapping[str, ProgramSim]) -> dict[str, frozenset[str]]:
    return {p: frozenset() for p in sims}


def rank_layers(sims: Mapping[str, ProgramSim], evaluate: Callable[[Config], float], *, method: str = "program",
                program_samples: Mapping[str, Sequence[Sequence[Any]]], baseline: float | None = None,
                progress: bool = False) -> list[LayerScore]:
    """Every unit of every program, most sensitive first.

    program (default, cheap): one end-to-end run per program (that program alone INT8) gives
        its share N_p of the end-to-end noise; each unit's float-alone SQNR gain on its own
        program's calibration inputs gives the fraction f_u of N_p it removes; units rank by
        N_p * f_u and the gain is the end-to-end dB this predicts.
    float_one: one end-to-end run per unit: quality with the unit alone float (rest INT8).
    quant_one: one end-to-end run per unit: quality with the unit alone INT8 (rest float).
    """
    from tqdm import tqdm

    if method not in ("program", "float_one", "quant_one"):
        raise ValueError(f"method {method!r}: use program, float_one or quant_one")
    base = evaluate(all_int8(sims)) if baseline is None else baseline
    jobs = [(p, u) for p, sim in sims.items() for u in sim.units]
    order = {(p, u.name): i for i, (p, u) in enumerate(jobs)}
    scores: list[LayerScore] = []
    if method == "program":
        noise_total = 10 ** (-base / 10) if math.isfinite(base) else 0.0
        share, sq0 = {}, {}
        for p, sim in sims.items():
            q = evaluate({**{o: None for o in sims}, p: frozenset()})
            share[p] = 10 ** (-q / 10) if math.isfinite(q) else 0.0
            sq0[p] = sim.program_sqnr((), program_samples[p])
        for p, u in tqdm(jobs, desc="layer sensitivity", disable=not progress, leave=False):
            with sims[p].unit_float(u) as gm:
                sq = sims[p].program_sqnr((), program_samples[p], module=gm)
            frac = 1 - 10 ** (-(sq - sq0[p]) / 10) if math.isfinite(sq) and math.isfinite(sq0[p]) else (1.0 if sq == math.inf else 0.0)
            left = max(noise_total - share[p] * frac, noise_total * 1e-6, 1e-30)
            q = -10 * math.log10(left) if noise_total > 0 else math.inf
            scores.append(LayerScore(p, u, q, (q - base) if math.isfinite(base) else 0.0, sq))
    else:
        for p, u in tqdm(jobs, desc="layer sensitivity", disable=not progress, leave=False):
            if method == "float_one":
                q = evaluate({**all_int8(sims), p: frozenset({u.name})})
                gain = q - base
            else:
                everything = {o: frozenset(x.name for x in sim.units) for o, sim in sims.items()}
                q = evaluate({**everything, p: everything[p] - {u.name}})
                gain = -q
            scores.append(LayerScore(p, u, q, gain))
    # most sensitive first; ties: larger layers first, then graph order (deterministic)
    scores.sort(key=lambda s: (-_finite(s.gain), -s.unit.params, order[(s.program, s.unit.name)]))
    return scores


def _float_source(a: Any) -> Any:
    """The float value behind a dequantize(quantize(x)) argument, else the argument itself."""
    from edgeth.quantize.pt2e import is_dequantize, is_quantize

    if is_dequantize(a) and is_quantize(a.args[0]):
        return a.args[0].args[0]
    if isinstance(a, (list, tuple)):
        return type(a)(_float_source(x) for x in a)
    return a


def _finite(v: float) -> float:
    return 1e9 if v == math.inf else (-1e9 if v == -math.inf or math.isnan(v) else v)
