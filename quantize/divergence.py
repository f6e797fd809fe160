"""First-divergence report: each layer of an exported program against the FP32 PyTorch layer.

For one input, every layer's output in the exported program (run on its real backend) is
compared with the same layer of the FP32 PyTorch program, in graph order (SQNR, cosine,
max |diff|); the first layer whose SQNR falls below the budget is named.

  executorch   the program is quantized as its exporter does (targets/executorch/quantizer),
               intermediate outputs are tapped with ExecuTorch's intermediate_output_tap
               (works through XNNPACK delegates; calculate_numeric_gap does not). A quantized
               layer is tapped at its output's quantize node (INT8, dequantized here): taps
               on a quantized op's float output break XNNPACK lowering. Tap sets that still
               fail to lower are split in halves and lowered separately.
  onnx,        the exported .onnx (QDQ / FP16 / FP32) with every intermediate tensor made a
  tensorrt     graph output, run on ONNX Runtime (TensorRT's input model; the engine itself
               needs an NVIDIA device)

Layers are matched by (module path, op, occurrence within that module) so wrappers added
at export (FP16 I/O casts) do not shift the match.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

if TYPE_CHECKING:
    from edgeth.program import Program

WRAPPER_SEGMENTS = ("half_model", "fp32_island")  # edgeth.quantize.fp16_audit wrappers
SKIP_OPS = ("getitem", "quantize", "choose_qparams", "_to_copy", "alias", "detach", "clone", "_assert")


@dataclass
class LayerRow:
    index: int
    node: str
    module: str
    op: str
    sqnr_db: float
    cosine: float
    max_abs: float
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        def num(v):
            return v if math.isfinite(v) else str(v)

        return {"index": self.index, "node": self.node, "module": self.module, "op": self.op,
                "sqnr_db": num(self.sqnr_db), "cosine": num(self.cosine), "max_abs": num(self.max_abs),
                "shape": list(self.shape)}


@dataclass
class DivergenceReport:
    program: str
    target: str
    precision: str
    budget_db: float
    rows: list[LayerRow] = field(default_factory=list)
    unobserved: list[str] = field(default_factory=list)  # layers the backend could not expose
    notes: list[str] = field(default_factory=list)

    @property
    def first(self) -> LayerRow | None:
        return next((r for r in self.rows if r.sqnr_db < self.budget_db), None)

    def to_json(self) -> dict[str, Any]:
        f = self.first
        return {"program": self.program, "target": self.target, "precision": self.precision,
                "budget_sqnr_db": self.budget_db, "first_divergence": f.to_json() if f else None,
                "layers": [r.to_json() for r in self.rows], "unobserved": self.unobserved, "notes": self.notes}

    def table(self, limit: int | None = None) -> str:
        first = self.first
        lines = [f"{'#':>4}  {'SQNR dB':>8}  {'cosine':>8}  {'max|d|':>9}  {'op':<22} {'module':<28} node"]
        for r in self.rows[:limit] if limit else self.rows:
            mark = "  <-- first below budget" if r is first else ""
            sq = "inf" if math.isinf(r.sqnr_db) else f"{r.sqnr_db:8.1f}"
            lines.append(f"{r.index:>4}  {sq:>8}  {r.cosine:8.5f}  {r.max_abs:9.2e}  {r.op:<22} {r.module or '<root>':<28} {r.node}{mark}")
        return "\n".join(lines)


def _short(target: Any) -> str:
    t = str(target)
    parts = t.split(".")
    return parts[-2] if len(parts) >= 2 and parts[-1] in ("default", "Tensor", "int", "vec", "input", "dim") else parts[-1]


def _path(node) -> str:
    from edgeth.quantize.pt2e import module_path

    p = module_path(node)[0]
    return ".".join(s for s in p.split(".") if s not in WRAPPER_SEGMENTS)


def _candidates(gm) -> list:
    """Nodes whose output is one floating tensor and that compute something (no views of q/dq)."""
    import torch

    out = []
    for n in gm.graph.nodes:
        if n.op != "call_function":
            continue
        v = n.meta.get("val")
        if not isinstance(v, torch.Tensor) or not v.is_floating_point():
            continue
        if any(s in str(n.target) for s in SKIP_OPS):
            continue
        out.append(n)
    return out


def _keys(nodes) -> dict[str, tuple]:
    """node name -> (module path, op, occurrence) for matching across graphs."""
    seen: dict[tuple, int] = defaultdict(int)
    keys = {}
    for n in nodes:
        base = (_path(n), _short(n.target))
        keys[n.name] = (*base, seen[base])
        seen[base] += 1
    return keys


def reference_layers(program: "Program", inputs: Sequence[np.ndarray]) -> tuple[list[tuple], dict[tuple, np.ndarray], dict[tuple, tuple]]:
    """FP32 PyTorch layer outputs: (keys in graph order, key -> array, key -> (node, module, op))."""
    import torch

    from edgeth.targets.preflight import export_program

    gm = export_program(program).module()
    nodes = _candidates(gm)
    keys = _keys(nodes)
    wanted = {n.name for n in nodes}
    vals: dict[tuple, np.ndarray] = {}

    class Rec(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n.name in wanted:
                vals[keys[n.name]] = out.detach().float().cpu().numpy()
            return out

    with torch.no_grad():
        Rec(gm).run(*[torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
    info = {keys[n.name]: (n.name, _path(n), _short(n.target)) for n in nodes}
    return [keys[n.name] for n in nodes], vals, info


# -- ExecuTorch --------------------------------------------------------------------------------
def _tap_sources(gm) -> tuple[dict[str, Any], list[str]]:
    """(candidate node name -> node to tap, candidates inside fused INT8 ops).

    An INT8 op is tapped at its output quantize node. An op that reads dequantized inputs
    but whose output is not quantized itself is the inside of a fused INT8 pattern (the conv
    of conv+relu): XNNPACK never materialises it, so it is not tapped."""
    from edgeth.quantize.pt2e import is_dequantize as is_dq, is_quantize as is_q

    out, fused = {}, []
    for n in _candidates(gm):
        q = [u for u in n.users if is_q(u)]
        if len(n.users) == 1 and q:
            out[n.name] = q[0]
        elif any(is_dq(a) for a in n.args) and not q and len(n.users) == 1 and not is_q(next(iter(n.users))):
            user = next(iter(n.users))
            if any(is_q(u) for u in user.users) and _short(user.target) in ("relu", "hardtanh", "clamp"):
                fused.append(n.name)
                continue
            out[n.name] = n
        else:
            out[n.name] = n
    return out, fused


def _lower_and_run(ep, tap_names: list[str], inputs) -> dict[str, Any]:
    import copy
    import os
    import tempfile

    import torch

    from edgeth.targets.common import quiet_python
    from edgeth.targets.executorch.runner import load_method

    with quiet_python():
        from executorch.devtools.intermediate_output_tap import FULL_TENSOR, strip_taps_, tap_intermediate_outputs_
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        names = set(tap_names)
        ep_t, specs = tap_intermediate_outputs_(copy.deepcopy(ep), rules=[(lambda n: n.name in names, FULL_TENSOR)])
        edge = to_edge_transform_and_lower(ep_t, partitioner=[XnnpackPartitioner()])
        strip_taps_(edge)
        buf = edge.to_executorch().buffer
    fd, path = tempfile.mkstemp(suffix=".pte")
    os.close(fd)
    try:
        with open(path, "wb") as f:
            f.write(buf)
        from pathlib import Path

        program, method = load_method(Path(path))
        outs = method.execute([torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
        return {s.node_name: outs[s.output_index].detach().clone() for s in specs}
    finally:
        os.unlink(path)


def _tap_all(ep, names: list[str], inputs, failed: list[str]) -> dict[str, Any]:
    """Lower with every tap; on failure split the set in halves (singletons that fail are dropped)."""
    if not names:
        return {}
    try:
        return _lower_and_run(ep, names, inputs)
    except Exception:
        if len(names) == 1:
            failed.append(names[0])
            return {}
        mid = len(names) // 2
        return {**_tap_all(ep, names[:mid], inputs, failed), **_tap_all(ep, names[mid:], inputs, failed)}


def executorch_layers(program: "Program", plan: Any, inputs: Sequence[np.ndarray]) -> tuple[dict[tuple, np.ndarray], list[str]]:
    from edgeth.targets.executorch import quantizer
    from edgeth.targets.preflight import export_program

    ep, _ = quantizer.apply(program, export_program(program), plan)
    gm = ep.graph_module
    srcs, fused = _tap_sources(gm)
    keys = _keys(_candidates(gm))
    failed: list[str] = []
    taps = _tap_all(ep, sorted({s.name for s in srcs.values()}), inputs, failed)
    vals = {}
    for name, src in srcs.items():
        t = taps.get(src.name)
        if t is None:
            continue
        if src.name != name:  # an INT8 tap of the quantize node: dequantize with its scale / zero-point
            scale, zp = float(src.args[1]), int(src.args[2])
            t = (t.float() - zp) * scale
        vals[keys[name]] = t.float().numpy()
    unobserved = [f"{n} (fused into the next INT8 op)" for n in fused] + [n for n, s in srcs.items() if s.name in failed]
    return vals, unobserved


# -- ONNX Runtime --------------------------------------------------------------------------------
def onnx_layers(program: "Program", plan: Any, inputs: Sequence[np.ndarray], target: str = "onnx") -> dict[str, np.ndarray]:
    """FX node name -> value of the last ONNX node exported from it, run on ONNX Runtime."""
    import tempfile
    from pathlib import Path

    import onnx

    from edgeth.quantize.onnx_qdq import node_scope
    from edgeth.targets import get_target
    from edgeth.targets.onnx.runner import session as onnx_session

    with tempfile.TemporaryDirectory(prefix="edgeth-debug-") as td:
        art = get_target(target).export(program, plan, Path(td))
        model = onnx.load(str(Path(td) / art.files[0]))
    model = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi for vi in model.graph.value_info}
    last: dict[str, str] = {}
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear", "Constant", "Cast"):
            continue
        fx, _ = node_scope(n)
        if n.output and n.output[0] in types:
            last[fx] = n.output[0]
    have = {o.name for o in model.graph.output}
    for t in last.values():
        if t not in have:
            model.graph.output.append(types[t])
            have.add(t)
    sess = onnx_session(model.SerializeToString())
    feed = {i.name: np.ascontiguousarray(x) for i, x in zip(sess.get_inputs(), inputs)}
    names = [o.name for o in sess.get_outputs()]
    outs = dict(zip(names, sess.run(None, feed)))
    return {fx: np.asarray(outs[t], dtype=np.float32) for fx, t in last.items() if t in outs}


def first_divergence(program: "Program", plan: Any, inputs: Sequence[np.ndarray], *, target: str = "executorch",
                     budget_db: float | None = None, progress: Callable[[str], None] | None = None) -> DivergenceReport:
    """Per-layer comparison of the exported program against FP32 PyTorch on `inputs` (see module doc)."""
    from edgeth.errors import InputError
    from edgeth.runtime_py import parity
    from edgeth.tolerances import tolerance_for

    precision = getattr(plan, "precision", "fp32") if plan is not None else "fp32"
    if budget_db is None:
        budget_db = tolerance_for(precision, "layer").get("sqnr_db", 20.0)
    order, ref, info = reference_layers(program, inputs)
    if target == "executorch":
        got, unobserved = executorch_layers(program, plan, inputs)
    elif target in ("onnx", "tensorrt"):
        by_fx = onnx_layers(program, plan, inputs, target)
        got = {k: by_fx[info[k][0]] for k in order if info[k][0] in by_fx}
        unobserved = []
    else:
        raise InputError(f"edgeth debug cannot run target {target!r} here",
                         "use --target executorch, onnx or tensorrt (Core ML runs only on macOS)")
    rep = DivergenceReport(program.name, target, precision, float(budget_db), unobserved=unobserved)
    for k in order:
        if k not in got or k not in ref or got[k].shape != ref[k].shape:
            continue
        node, module, op = info[k]
        r, g = ref[k], got[k]
        rep.rows.append(LayerRow(len(rep.rows), node, module, op, parity.sqnr_db(r, g), parity.cosine(r, g),
                                 parity.max_abs(r, g), tuple(r.shape)))
    return rep
