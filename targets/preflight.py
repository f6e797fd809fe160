"""Preflight: one torch.export + graph walk per program, shared by every target.

`export_program(program)` runs torch.export once and caches the ExportedProgram (keyed on
the module, invalidated when a weight/buffer changes or the example inputs change), so
the export itself reuses it. `facts(program)` walks that graph and the module tree once
and records what targets care about:

  grid_sample uses     rank (4-D / 5-D), mode, padding_mode, module path
  3-D convolutions     module path of every convolution with a 5-D weight (Conv3d)
  mutations            in-place ops on graph inputs (or views of them) and on buffers
  data-dependent       nodes whose shapes depend on values (nonzero, masked_select, ...)
  export failure       torch.export refused the program: for a data-dependent guard the
                       failing submodule is located by exporting children one by one
  module tree          submodules left in training mode, float_only paths that do not exist

`issues(program, rules)` turns the facts into PreflightIssues for one target's `Rules`.
Module paths come from node.meta["nn_module_stack"] ("" is the program's top module,
shown as "<root>"). Target-specific products (ExecuTorch's lowered program, the ONNX
bytes) are memoised on the same cache entry with `memo(program, key, build)`.
"""
from __future__ import annotations

import contextlib

import operator
import re
import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from edgeth.errors import UnsupportedOp
from edgeth.targets import PreflightIssue
from edgeth.targets.common import first_line, quiet_python, torch_dynamic_shapes

ROOT = "<root>"
GRID_MODES = {0: "bilinear", 1: "nearest", 2: "bicubic"}
GRID_PADDINGS = {0: "zeros", 1: "border", 2: "reflection"}


@dataclass(frozen=True)
class GridSampleUse:
    module_path: str
    rank: int
    mode: str
    padding: str


@dataclass(frozen=True)
class Mutation:
    module_path: str
    tensor: str  # graph input or buffer name
    kind: str  # "input" | "buffer"
    op: str


@dataclass
class GraphFacts:
    export_error: PreflightIssue | None = None
    grid_samples: list[GridSampleUse] = field(default_factory=list)
    conv3d: list[str] = field(default_factory=list)  # module paths
    mutations: list[Mutation] = field(default_factory=list)
    data_dependent: list[tuple[str, str]] = field(default_factory=list)  # (module path, op)
    ops: Counter = field(default_factory=Counter)  # aten op name -> count
    training_modules: list[str] = field(default_factory=list)
    missing_float_only: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Rules:
    """What one target accepts; severities are "error" or "warning"."""

    grid_sample_ranks: frozenset[int] = frozenset({4})
    grid_sample_rank_severity: str = "error"
    grid_sample_rank_advice: str = ("fold the depth axis into batch or channels and use 4-D grid_sample, "
                                    "or export this program to a target that supports 3-D sampling")
    grid_sample_modes: frozenset[str] = frozenset(GRID_MODES.values())
    grid_sample_paddings: frozenset[str] = frozenset(GRID_PADDINGS.values())
    input_mutation: str = "warning"
    data_dependent: str = "warning"
    conv3d: str = ""  # severity of a 3-D convolution ("" = the target runs it)


CONV3D_ADVICE = ("factorize it: a 2-D spatial conv over frames folded into the batch + a 1-D temporal conv "
                 "(XNNPACK has no 3-D convolution, google/XNNPACK#3978: it would run on portable kernels)")


# -- the cache -------------------------------------------------------------------------------
@dataclass
class _Entry:
    key: tuple
    ep: Any = None
    facts: GraphFacts | None = None
    memo: dict[str, Any] = field(default_factory=dict)


_CACHE: "weakref.WeakKeyDictionary[Any, _Entry]" = weakref.WeakKeyDictionary()


def _fingerprint(program) -> tuple:
    m = program.module
    state = tuple((n, t.data_ptr(), t._version, tuple(t.shape), str(t.dtype))
                  for n, t in (*m.named_parameters(), *m.named_buffers()))
    ins = tuple((tuple(x.shape), str(x.dtype), x.data_ptr(), x._version) for x in program.example_inputs)
    specs = tuple((s.name, s.shape, tuple(sorted(s.dynamic.items()))) for s in program.inputs)
    return (state, ins, specs)


def _entry(program) -> _Entry:
    key = _fingerprint(program)
    e = _CACHE.get(program.module)
    if e is None or e.key != key:
        e = _Entry(key)
        _CACHE[program.module] = e
    return e


def memo(program, key: str, build: Callable[[], Any], *, take: bool = False) -> Any:
    """A per-program product cached with the ExportedProgram; take=True hands it over and forgets it."""
    e = _entry(program)
    if key not in e.memo:
        e.memo[key] = build()
    return e.memo.pop(key) if take else e.memo[key]


def forget(program) -> None:
    _CACHE.pop(program.module, None)


# -- torch.export -----------------------------------------------------------------------------
def _is_data_dependent(exc: BaseException) -> bool:
    try:
        from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode
    except ImportError:  # pragma: no cover - older torch
        GuardOnDataDependentSymNode = ()  # type: ignore
    return isinstance(exc, GuardOnDataDependentSymNode) or "data-dependent" in str(exc).lower()


@contextlib.contextmanager
def _buffers_persistent(module):
    """Treat non-persistent buffers (DFT bases, identity grids) as persistent while exporting.

    ExecuTorch's verifier rejects a lowered program whose delegated ops consume a
    non-persistent buffer ("Non-persistent buffer ... is in the state dict"); as persistent
    buffers they are ordinary constants for every target. The module is restored afterwards.
    """
    saved = [(m, set(m._non_persistent_buffers_set)) for m in module.modules() if m._non_persistent_buffers_set]
    for m, _ in saved:
        m._non_persistent_buffers_set.clear()
    try:
        yield
    finally:
        for m, names in saved:
            m._non_persistent_buffers_set.update(names)


def _export(module, args, kwargs=None, dynamic_shapes=None):
    import torch

    with quiet_python(), _buffers_persistent(module):
        return torch.export.export(module, tuple(args), kwargs or {}, dynamic_shapes=dynamic_shapes)


def _locate_data_dependent(module, args, kwargs, path: str = "") -> str:
    """Deepest submodule whose own torch.export fails with a data-dependent error."""
    import torch

    captured: dict[str, tuple] = {}
    children = dict(module.named_children())

    def recorder(name: str):
        def hook(_module, args, kwargs):
            captured.setdefault(name, (args, kwargs))  # first call only; returning None keeps the inputs

        return hook

    hooks = [child.register_forward_pre_hook(recorder(name), with_kwargs=True) for name, child in children.items()]
    try:
        with torch.no_grad():
            module(*args, **(kwargs or {}))
    except Exception:
        pass  # eager failure: the hooks captured what they could
    finally:
        for h in hooks:
            h.remove()
    for name, (a, k) in captured.items():
        try:
            _export(children[name], a, k)
        except Exception as e:
            if _is_data_dependent(e):
                return _locate_data_dependent(children[name], a, k, f"{path}.{name}" if path else name)
    return path


def export_program(program):
    """The program's ExportedProgram (cached); UnsupportedOp naming the module if torch.export fails."""
    e = _entry(program)
    if e.ep is None:
        try:
            e.ep = _export(program.module.eval(), program.example_inputs,
                           dynamic_shapes=torch_dynamic_shapes(program.inputs))
        except Exception as exc:
            issue = _export_issue(program, exc)
            raise UnsupportedOp(f"program {program.name!r}: {issue.construct} at module {issue.module_path!r}",
                                issue.advice) from None
    return e.ep


def _export_issue(program, exc: BaseException) -> PreflightIssue:
    if _is_data_dependent(exc):
        path = _locate_data_dependent(program.module, program.example_inputs, {}) or ROOT
        why = re.split(r"\s+\((?:unhinted|Size-like)", first_line(exc, 160))[0]
        return PreflightIssue("error", path, f"data-dependent shape or control flow: {why}",
                              "keep shapes static: replace Python `if` on tensor values and .item() with "
                              "torch.where / fixed-size ops")
    return PreflightIssue("error", ROOT, f"torch.export failed: {type(exc).__name__}: {first_line(exc, 200)}",
                          "make the module export with torch.export.export(module, example_inputs); "
                          "EDGETH_DEBUG=1 for details")


# -- the graph walk ---------------------------------------------------------------------------
def module_path(node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ROOT
    path = list(stack.values())[-1][0]
    if path.startswith("L['self']"):
        path = path[len("L['self']"):].lstrip(".")
    return path or ROOT


def op_name(target) -> str:
    name = getattr(target, "__name__", None) or str(target)
    ns = getattr(target, "namespace", None)
    return f"{ns}.{name}" if ns and not name.startswith(f"{ns}.") else name


def facts(program) -> GraphFacts:
    """What the preflight rules look at (cached with the ExportedProgram)."""
    e = _entry(program)
    if e.facts is not None:
        return e.facts
    f = GraphFacts()
    f.training_modules = [n or ROOT for n, m in program.module.named_modules() if m.training]
    names = {n for n, _ in program.module.named_modules()}
    f.missing_float_only = [p for p in program.float_only if p not in names]
    if e.ep is None:
        try:
            e.ep = _export(program.module.eval(), program.example_inputs,
                           dynamic_shapes=torch_dynamic_shapes(program.inputs))
        except Exception as exc:
            f.export_error = _export_issue(program, exc)
            e.facts = f
            return f
    _walk(e.ep, f, program.input_names)
    e.facts = f
    return f


def _walk(ep, f: GraphFacts, input_names: list[str]) -> None:
    import torch
    from torch.fx.experimental.symbolic_shapes import free_unbacked_symbols

    sig = ep.graph_signature
    tracked: dict[Any, tuple[str, str]] = {}  # node -> (tensor name, "input"|"buffer") it aliases
    buffers = dict(sig.inputs_to_buffers)
    spec_name = dict(zip(sig.user_inputs, input_names))  # graph placeholder -> TensorSpec name
    for node in ep.graph.nodes:
        if node.op == "placeholder":
            if node.name in spec_name:
                tracked[node] = (spec_name[node.name], "input")
            elif node.name in buffers:
                tracked[node] = (buffers[node.name], "buffer")
            continue
        if node.op != "call_function":
            continue
        if node.target is operator.getitem:
            if node.args[0] in tracked:
                tracked[node] = tracked[node.args[0]]
            continue
        f.ops[op_name(node.target)] += 1
        where = module_path(node)
        target = node.target
        if target in (torch.ops.aten.grid_sampler.default, torch.ops.aten.grid_sampler_2d.default,
                      torch.ops.aten.grid_sampler_3d.default):
            val = node.args[0].meta.get("val")
            rank = val.dim() if val is not None else (5 if target == torch.ops.aten.grid_sampler_3d.default else 4)
            f.grid_samples.append(GridSampleUse(where, rank, GRID_MODES.get(node.args[2], str(node.args[2])),
                                                GRID_PADDINGS.get(node.args[3], str(node.args[3]))))
        if target in (torch.ops.aten.convolution.default, torch.ops.aten.conv3d.default, torch.ops.aten.conv3d.padding):
            w = node.args[1].meta.get("val") if isinstance(node.args[1], torch.fx.Node) else None
            if w is not None and w.dim() == 5 and where not in f.conv3d:
                f.conv3d.append(where)
        val = node.meta.get("val")
        # where a value-dependent size is born (not every op it flows through)
        tensors = [v for v in (val if isinstance(val, (tuple, list)) else [val]) if isinstance(v, torch.Tensor)]
        if any(_unbacked(v, free_unbacked_symbols) for v in tensors) and not any(
                _unbacked(a.meta.get("val"), free_unbacked_symbols) for a in node.all_input_nodes):
            if (where, op_name(target)) not in f.data_dependent:
                f.data_dependent.append((where, op_name(target)))
        schema = getattr(target, "_schema", None)
        if schema is None:
            continue
        aliased_by_view = False
        for i, arg in enumerate(schema.arguments):
            value = node.args[i] if i < len(node.args) else node.kwargs.get(arg.name)
            if not isinstance(value, torch.fx.Node) or value not in tracked or arg.alias_info is None:
                continue
            if arg.alias_info.is_write:
                name, kind = tracked[value]
                m = Mutation(where, name, kind, op_name(target))
                if m not in f.mutations:
                    f.mutations.append(m)
            aliased_by_view = True
            src = value
        if aliased_by_view and any(r.alias_info is not None for r in schema.returns):
            tracked[node] = tracked[src]


def _unbacked(val, free_unbacked_symbols) -> bool:
    try:
        return val is not None and bool(free_unbacked_symbols(val))
    except Exception:
        return False


# -- rules -> issues --------------------------------------------------------------------------
def issues(program, rules: Rules) -> list[PreflightIssue]:
    f = facts(program)
    if f.export_error is not None:
        return [f.export_error]
    out: list[PreflightIssue] = []
    for g in f.grid_samples:
        if g.rank not in rules.grid_sample_ranks:
            out.append(PreflightIssue(rules.grid_sample_rank_severity, g.module_path,
                                      f"grid_sample on a {g.rank}-D input", rules.grid_sample_rank_advice))
        if g.mode not in rules.grid_sample_modes:
            ok = ", ".join(sorted(rules.grid_sample_modes))
            out.append(PreflightIssue("error", g.module_path, f"grid_sample mode={g.mode!r}", f"use one of: {ok}"))
        if g.padding not in rules.grid_sample_paddings:
            ok = ", ".join(sorted(rules.grid_sample_paddings))
            out.append(PreflightIssue("error", g.module_path, f"grid_sample padding_mode={g.padding!r}",
                                      f"use one of: {ok}"))
    if rules.conv3d:
        out += [PreflightIssue(rules.conv3d, where, "3-D convolution (Conv3d)", CONV3D_ADVICE) for where in f.conv3d]
    for m in f.mutations:
        if m.kind == "input":
            out.append(PreflightIssue(rules.input_mutation, m.module_path, f"in-place {m.op} on graph input {m.tensor!r}",
                                      "clone the input before modifying it (x = x.clone()); exported runtimes "
                                      "do not write back into the caller's arrays"))
        else:
            out.append(PreflightIssue("warning", m.module_path, f"in-place {m.op} on buffer {m.tensor!r} (run-time state)",
                                      "Programs must be stateless: pass the state in as an input and return it"))
    for where, op in f.data_dependent:
        out.append(PreflightIssue(rules.data_dependent, where, f"data-dependent output shape ({op})",
                                  "use fixed-size ops (masking with torch.where) so shapes are known at export"))
    if f.training_modules:
        out.append(PreflightIssue("warning", f.training_modules[0], "module was in training mode",
                                  "export calls .eval(); call program.module.eval() yourself to avoid surprises"))
    for p in f.missing_float_only:
        out.append(PreflightIssue("warning", p, "float_only names no submodule", "fix Program.float_only"))
    return out
