"""PT2E INT8 with the XNNPACK quantizer: the one place that prepares, calibrates and converts.

Used by the ExecuTorch quantizer (static / dynamic INT8 before lowering), the Core ML
quantizer (W8A8: quantize with this flow, then `ct.convert`), the mixed-precision search
(the converted fake-quant graph runs in PyTorch eager on CPU, so a trial needs no
lowering) and `edgeth debug`.

Layers ("units") are the ops the XNNPACK quantizer can annotate: conv, linear, add, mul,
cat, adaptive avg pool. A unit is named by its module path when it is the only such op in
that module (`enc.0`, `block.attn.qkv`), else by its graph node name (`add_1`). A
`float_layers` entry keeps a unit in float when it equals the unit's node name or its
module path, or is a dotted prefix of the module path (`flow_head` keeps everything in it).

Scoping goes through `set_global` + a filter function: scoping by module name/type
silently skips convolutions, because the annotator also asks the filter about the weight
nodes, which carry no module path (see the export-stack facts note). The filter here
answers True for nodes without a module path.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch.fx import GraphModule, Node

MODES = ("static", "dynamic")


@dataclass(frozen=True)
class Unit:
    """One quantizable op of a program, in graph order."""

    name: str  # what float_layers uses: module path or node name
    node: str  # graph node name in the exported graph
    op: str  # conv | conv_transpose | linear | add | mul | cat | pool
    module_path: str
    module_class: str
    params: int  # weight elements (0 for elementwise ops)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "node": self.node, "op": self.op, "module": self.module_path,
                "class": self.module_class, "params": self.params}


def op_kinds() -> dict[Any, str]:
    import torch

    aten = torch.ops.aten
    kinds: dict[Any, str] = {}
    for t in (aten.conv1d.default, aten.conv2d.default, aten.convolution.default):
        kinds[t] = "conv"
    for t in (aten.conv_transpose1d.default, aten.conv_transpose2d.input):
        kinds[t] = "conv_transpose"
    kinds[aten.linear.default] = "linear"
    kinds[aten.add.Tensor] = "add"
    kinds[aten.mul.Tensor] = "mul"
    kinds[aten.cat.default] = "cat"
    kinds[aten.adaptive_avg_pool2d.default] = "pool"
    return kinds


def module_path(node: "Node") -> tuple[str, str]:
    """(dotted module path, class name) of the innermost module a node came from; ('', '') if none."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "", ""
    path, cls = list(stack.values())[-1]
    cls = cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"
    # export records paths like "L['self'].enc.0" in some versions; keep the dotted tail
    if path.startswith("L['self']"):
        path = path[len("L['self']"):].lstrip(".")
    return path, cls.rsplit(".", 1)[-1]


def export_graph(module: "torch.nn.Module", example_inputs: Sequence["torch.Tensor"]) -> "torch.export.ExportedProgram":
    """torch.export the module in eval mode (the graph every PT2E step starts from)."""
    import torch

    from edgeth.errors import UnsupportedOp

    module = module.eval()
    try:
        with torch.no_grad():
            return torch.export.export(module, tuple(example_inputs))
    except Exception as e:  # torch.export failures are long; keep the first line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnsupportedOp(f"torch.export failed before quantization: {first}",
                            "make the program export-clean (edgeth export runs preflight first)") from e


def is_dequantize(node: Any) -> bool:
    """A dequantize_per_* node of a converted PT2E graph."""
    return getattr(node, "op", "") == "call_function" and "dequantize" in str(node.target)


def is_quantize(node: Any) -> bool:
    """A quantize_per_* node (not a dequantize) of a converted PT2E graph."""
    return getattr(node, "op", "") == "call_function" and "quantize_per" in str(node.target) and not is_dequantize(node)


def list_units(gm: "GraphModule") -> list[Unit]:
    """The quantizable ops of an exported graph, in graph order, with stable names."""
    kinds = op_kinds()
    nodes = [n for n in gm.graph.nodes if n.op == "call_function" and n.target in kinds]
    per_path: dict[str, int] = {}
    for n in nodes:
        p, _ = module_path(n)
        per_path[p] = per_path.get(p, 0) + 1
    units = []
    for n in nodes:
        p, cls = module_path(n)
        name = p if p and per_path[p] == 1 else n.name
        params = 0
        if kinds[n.target] in ("conv", "conv_transpose", "linear") and len(n.args) > 1:
            w = n.args[1]
            val = getattr(w, "meta", {}).get("val")
            params = int(val.numel()) if val is not None else 0
        units.append(Unit(name, n.name, kinds[n.target], p, cls, params))
    return units


def matches(entry: str, node_name: str, path: str) -> bool:
    return entry == node_name or (bool(path) and (path == entry or path.startswith(entry + ".")))


def float_filter(float_layers: Iterable[str] = (), skip_kinds: Iterable[str] = ()) -> Callable[["Node"], bool]:
    """A quantizer filter: False (keep float) for op nodes named by `float_layers` or of `skip_kinds`."""
    entries = tuple(e for e in float_layers if e)
    kinds = op_kinds()
    skip = set(skip_kinds)

    def keep_quantized(n: "Node") -> bool:
        if n.op != "call_function":
            return True  # weights, biases, inputs: no module path; the op decides
        if kinds.get(n.target) in skip:
            return False
        path, _ = module_path(n)
        return not any(matches(e, n.name, path) for e in entries)

    return keep_quantized


def make_quantizer(mode: str = "static", float_layers: Iterable[str] = ()):
    """The XNNPACK PT2E quantizer: per-channel symmetric INT8 weights, per-tensor INT8
    activations (static: calibrated; dynamic: computed at run time, linear layers only)."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    if mode not in MODES:
        raise ValueError(f"mode {mode!r} not in {MODES}")

    class _Quantizer(XNNPACKQuantizer):
        # The conv+BN patterns export a dozen pattern graphs per prepare (~1.5 s); they can
        # only match when the graph has batch norms, so skip them otherwise.
        def annotate(self, model):
            has_bn = any("batch_norm" in str(getattr(n, "target", "")) for n in model.graph.nodes)
            if not has_bn:
                self.SUPPORTED_PATTERNS = [p for p in XNNPACKQuantizer.SUPPORTED_PATTERNS if "_bn" not in p.name]
            return super().annotate(model)

    q = _Quantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=(mode == "dynamic")))
    # dynamic: linear layers only (XNNPACK's dynamically quantized convolutions fail at run time
    # with xnn_status_invalid_parameter on the IF-MDM encoder)
    q.set_filter_function(float_filter(float_layers, ("conv", "conv_transpose") if mode == "dynamic" else ()))
    return q


def to_torch_inputs(sample: Sequence[Any]) -> tuple["torch.Tensor", ...]:
    import torch

    return tuple(x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x)) for x in sample)


def run_calibration(prepared: "GraphModule", samples: Sequence[Sequence[Any]], progress: bool = False, desc: str = "calibrate") -> None:
    import torch
    from tqdm import tqdm

    with torch.no_grad():
        for s in tqdm(samples, desc=desc, disable=not progress, leave=False):
            prepared(*to_torch_inputs(s))


def _observer_key(gm: "GraphModule", node: "Node") -> tuple:
    obs = getattr(gm, node.target)
    src = node.args[0]
    return (getattr(src, "name", str(src)), type(obs).__name__, str(getattr(obs, "qscheme", "")),
            getattr(obs, "ch_axis", None), str(getattr(obs, "dtype", "")))


def _observer_nodes(gm: "GraphModule") -> list["Node"]:
    return [n for n in gm.graph.nodes if n.op == "call_module" and "activation_post_process" in str(n.target)]


class Calibrated:
    """Prepare once with everything quantized, calibrate once, then build any float_layers
    variant without calibrating again: observers only watch the float graph, so a tensor's
    statistics do not depend on which other layers are quantized.
    """

    def __init__(self, module: "torch.nn.Module", example_inputs: Sequence["torch.Tensor"],
                 samples: Sequence[Sequence[Any]], *, mode: str = "static", progress: bool = False,
                 desc: str = "calibrate"):
        self.mode = mode
        self.samples = list(samples) or [tuple(example_inputs)]
        self.ep = export_graph(module, example_inputs)
        self.units = list_units(self.ep.module())
        self._observers: dict[tuple, Any] = {}
        self._qparams: dict[tuple, Any] = {}
        if mode == "static":
            from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

            prepared = prepare_pt2e(self._fresh(), make_quantizer(mode))
            run_calibration(prepared, self.samples, progress, desc)
            for n in _observer_nodes(prepared):
                self._observers.setdefault(_observer_key(prepared, n), getattr(prepared, n.target))

    def _fresh(self) -> "GraphModule":
        return copy.deepcopy(self.ep).module()

    def unit_names(self) -> list[str]:
        return [u.name for u in self.units]

    def _frozen(self, key: tuple, obs: Any) -> Any:
        """A copy of a calibrated observer whose qparams are computed once (HistogramObserver's
        search is ~0.1 s per tensor; a trial reuses it instead of recomputing)."""
        if key not in self._qparams:
            self._qparams[key] = obs.calculate_qparams()
        frozen = copy.deepcopy(obs)
        qp = self._qparams[key]
        frozen.calculate_qparams = lambda: qp
        return frozen

    def convert(self, float_layers: Iterable[str] = (), *, fold: bool = True) -> "GraphModule":
        """The converted (Q/DQ) graph with `float_layers` left in float; runs in eager."""
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        prepared = prepare_pt2e(self._fresh(), make_quantizer(self.mode, float_layers))
        missing = False
        for n in _observer_nodes(prepared):
            key = _observer_key(prepared, n)
            obs = self._observers.get(key)
            if obs is not None:
                setattr(prepared, n.target, self._frozen(key, obs))
            elif self.mode == "static":
                missing = True
        if missing:  # a tensor observed only in this variant: calibrate this variant
            run_calibration(prepared, self.samples)
        converted = convert_pt2e(prepared, fold_quantize=fold)
        float_inputs_for_float_layers(converted)
        return converted


def float_inputs_for_float_layers(gm: "GraphModule") -> list[str]:
    """Feed float conv/linear layers their producer's float value instead of a dequantized copy.

    XNNPACK mis-lowers a float convolution whose input is a dequantize node of a tensor that
    is INT8 for its other consumers (measured on a renderer's flow head kept float: SQNR
    -2 dB against FP32, found with `edgeth debug`). Bypassing that edge's quantize/dequantize
    is also the better numerics for a layer kept float. Returns the rewired node names.
    """
    kinds = op_kinds()
    is_dq, is_q = is_dequantize, is_quantize
    changed = []
    for n in gm.graph.nodes:
        if n.op != "call_function" or kinds.get(n.target) not in ("conv", "conv_transpose", "linear"):
            continue
        if len(n.args) < 2 or is_dq(n.args[1]):
            continue  # an INT8 layer
        act = n.args[0]
        if is_dq(act) and is_q(act.args[0]):
            n.replace_input_with(act, act.args[0].args[0])
            changed.append(n.name)
    if changed:
        gm.graph.eliminate_dead_code()
        gm.recompile()
    return changed


def quantize_exported(ep: "torch.export.ExportedProgram", samples: Sequence[Sequence[Any]] = (), *,
                      mode: str = "static", float_layers: Iterable[str] = (), progress: bool = False) -> "GraphModule":
    """Prepare -> calibrate -> convert an ExportedProgram's module; ready for `torch.export` and lowering.

    Static mode needs calibration samples (input tuples). Dynamic mode computes activation
    scales at run time; one pass still runs so the weight observers see the weights (the
    example inputs when no samples are given).
    """
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    prepared = prepare_pt2e(ep.module(), make_quantizer(mode, float_layers))
    if mode == "static":
        if not samples:
            raise ValueError("static INT8 needs calibration samples")
        run_calibration(prepared, samples, progress)
    else:
        run_calibration(prepared, list(samples)[:1] or [tuple(ep.example_inputs[0])])
    converted = convert_pt2e(prepared)
    float_inputs_for_float_layers(converted)
    if mode == "dynamic":
        # one choose_qparams chain per consumer, as ExecuTorch's LLM export does: a chain shared
        # by several linears makes XNNPACK's partitioner find dependency cycles
        from executorch.backends.transforms.duplicate_dynamic_quant_chain import DuplicateDynamicQuantChainPass

        DuplicateDynamicQuantChainPass()(converted)
        converted.recompile()
    return converted


def quantize_module(module: "torch.nn.Module", example_inputs: Sequence["torch.Tensor"],
                    samples: Sequence[Sequence[Any]] = (), *, mode: str = "static",
                    float_layers: Iterable[str] = (), progress: bool = False) -> "GraphModule":
    """`quantize_exported` from an nn.Module (exported with its example inputs; they calibrate if no samples)."""
    ep = export_graph(module, example_inputs)
    return quantize_exported(ep, list(samples) or [tuple(example_inputs)], mode=mode, float_layers=float_layers,
                             progress=progress)


def check_float_layers(gm: "GraphModule", float_layers: Iterable[str]) -> None:
    """Every float_layers entry must name a unit, a node or a module of the graph."""
    from edgeth.errors import InputError

    entries = [e for e in float_layers if e]
    if not entries:
        return
    units = list_units(gm)
    paths = {module_path(n)[0] for n in gm.graph.nodes}
    names = {n.name for n in gm.graph.nodes}
    bad = [e for e in entries if e not in names and not any(p == e or p.startswith(e + ".") for p in paths)]
    if bad:
        known = ", ".join(u.name for u in units[:12]) + (" ..." if len(units) > 12 else "")
        raise InputError(f"float layer(s) {', '.join(bad)} not in the program", f"quantizable layers: {known}")


def quantized_units(converted: "GraphModule") -> list[str]:
    """Node names of unit ops that run INT8: a dequantized weight (conv/linear), or for
    elementwise ops dequantized tensor inputs and a quantized output."""
    kinds = op_kinds()
    is_dq = is_dequantize
    out = []
    for n in converted.graph.nodes:
        if n.op != "call_function" or n.target not in kinds:
            continue
        if kinds[n.target] in ("conv", "conv_transpose", "linear"):
            if len(n.args) > 1 and is_dq(n.args[1]):
                out.append(n.name)
            continue
        tensors = [a for a in n.args if hasattr(a, "op")] + [a for x in n.args if isinstance(x, (list, tuple)) for a in x if hasattr(a, "op")]
        if tensors and all(is_dq(a) for a in tensors) and any(is_quantize(u) for u in n.users):
            out.append(n.name)
    return out
