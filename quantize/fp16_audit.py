"""FP16 safety: an activation-range audit over the calibration set, and safe decompositions.

Before an FP16 export the FP32 program runs on its calibration inputs; every graph node's
output magnitude is recorded. Findings:
  overflow     max |x| >= 32752 (half the FP16 limit 65504): error; >= 4096: warning
  layer_norm   a native LayerNorm over >= 256 features: error (ExecuTorch's portable FP16
               LayerNorm kernel is wrong there; XNNPACK has no LayerNorm) -> auto-fixed by
               swapping in SafeLayerNorm, the 4-D-means form XNNPACK delegates and gets right
  reduction    a mean/sum over >= 4096 elements (accumulates in FP16) or a mean that is not
               the 4-D [2,3] form (left to the portable kernel): warning
  softmax      logits spanning more than 2^10: precision loss in the FP16 exp: warning
  pow          pow/square outputs beyond 4096: covered by overflow, named as such

`make_fp16_safe(module, audit)` returns a copy with the known-unsafe LayerNorms swapped,
and the list of module paths it changed (the export report says where).

Shape legend: B batch, T tokens, C features.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import nn

from edgeth.quantize.pt2e import export_graph, module_path, to_torch_inputs

if TYPE_CHECKING:
    from edgeth.program import Program

FP16_MAX = 65504.0
OVERFLOW_ERROR = FP16_MAX / 2
OVERFLOW_WARN = 4096.0
LAYERNORM_UNSAFE_WIDTH = 256
REDUCTION_WARN = 4096
SOFTMAX_SPAN_WARN = 1024.0


class SafeLayerNorm(nn.Module):
    """LayerNorm over the last dim written with 4-D means over dims (2, 3): x (.., C) is viewed
    as (1, N, 1, C) so XNNPACK delegates the means (global average pooling) in FP16 and FP32."""

    def __init__(self, width: int, eps: float = 1e-5, weight: torch.Tensor | None = None,
                 bias: torch.Tensor | None = None):
        super().__init__()
        self.width, self.eps = width, eps
        self.weight = nn.Parameter(weight.detach().clone()) if weight is not None else None
        self.bias = nn.Parameter(bias.detach().clone()) if bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x4 = x.reshape(1, -1, 1, self.width)
        mu = x4.mean((2, 3), keepdim=True)
        xc = x4 - mu
        var = (xc * xc).mean((2, 3), keepdim=True)
        y = (xc * torch.rsqrt(var + self.eps)).reshape(shape)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y

    @classmethod
    def from_module(cls, m: nn.Module) -> "SafeLayerNorm":
        w, b = getattr(m, "weight", None), getattr(m, "bias", None)
        width = _layernorm_width(m)
        return cls(width, float(getattr(m, "eps", 1e-5)), w, b)


def _layernorm_width(m: nn.Module) -> int | None:
    """Feature width of a last-dim LayerNorm module (nn.LayerNorm, or a *LayerNorm class with a 1-D weight)."""
    if isinstance(m, nn.LayerNorm):
        return int(m.normalized_shape[-1]) if len(m.normalized_shape) == 1 else None
    if type(m).__name__.endswith("LayerNorm"):
        w = getattr(m, "weight", None)
        if isinstance(w, torch.Tensor) and w.dim() == 1:
            return int(w.shape[0])
    return None


@dataclass
class Finding:
    severity: str  # error | warning | info
    kind: str  # overflow | layer_norm | reduction | softmax | pow
    node: str
    module: str
    detail: str
    fix: str = ""
    value: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"severity": self.severity, "kind": self.kind, "node": self.node, "module": self.module,
                "detail": self.detail, "fix": self.fix, "value": _num(self.value)}


@dataclass
class Fp16Audit:
    program: str
    findings: list[Finding] = field(default_factory=list)
    max_abs: dict[str, float] = field(default_factory=dict)  # node -> max |output| over the samples
    samples: int = 0
    fixed: list[str] = field(default_factory=list)  # module paths changed by make_fp16_safe
    module_max: dict[str, float] = field(default_factory=dict)  # module path -> max |output|

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def unsafe_layernorm_modules(self) -> list[str]:
        return sorted({f.module for f in self.findings if f.kind == "layer_norm" and f.severity == "error" and f.module})

    def overflow_modules(self) -> list[str]:
        """Modules to keep FP32: for every overflowing tensor, the innermost module around it
        whose own output is back within FP16 range (nested ones dropped)."""
        return self.fp32_islands()[0]

    def fp32_islands(self) -> tuple[list[str], list[str]]:
        """(modules to run in FP32, overflowing nodes no module boundary can contain)."""
        islands, unfixable = set(), []
        for f in self.findings:
            if f.kind not in ("overflow", "pow") or f.severity != "error":
                continue
            parts = f.module.split(".") if f.module else []
            chain = [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
            ok = next((m for m in chain if self.module_max.get(m, math.inf) < OVERFLOW_ERROR), None)
            if ok is None:
                unfixable.append(f.node)
            else:
                islands.add(ok)
        keep = sorted(m for m in islands if not any(m.startswith(o + ".") for o in islands))
        return keep, unfixable

    def to_json(self) -> dict[str, Any]:
        top = sorted(self.max_abs.items(), key=lambda kv: -kv[1])[:5]
        return {"program": self.program, "samples": self.samples, "findings": [f.to_json() for f in self.findings],
                "largest": {k: _num(v) for k, v in top}, "fixed": list(self.fixed),
                "not_fixable": self.fp32_islands()[1]}


def _num(v: float) -> Any:
    return v if math.isfinite(v) else str(v)


def _record_ranges(gm: torch.fx.GraphModule, samples: Sequence[Sequence[Any]]) -> dict[str, dict[str, float]]:
    """Per call_function node: max |out| and (for softmax inputs) the logit span, over all samples."""
    stats: dict[str, dict[str, float]] = {}

    class Rec(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n.op == "call_function" and isinstance(out, torch.Tensor) and out.is_floating_point() and out.numel():
                s = stats.setdefault(n.name, {"max_abs": 0.0, "span": 0.0, "finite": 1.0})
                a = out.detach().float()
                fin = torch.isfinite(a)
                if not bool(fin.all()):
                    s["finite"] = 0.0
                    a = torch.where(fin, a, torch.zeros_like(a))
                s["max_abs"] = max(s["max_abs"], float(a.abs().max()))
                s["span"] = max(s["span"], float(a.max() - a.min()))
            return out

    with torch.no_grad():
        for x in samples:
            Rec(gm).run(*to_torch_inputs(x))
    return stats


def _module_ranges(module: nn.Module, samples: Sequence[Sequence[Any]]) -> dict[str, float]:
    """max |output| of every named submodule over the samples (forward hooks, FP32 eager)."""
    out: dict[str, float] = {}
    hooks = []

    def hook(name):
        def fn(_m, _i, o):
            ts = o if isinstance(o, (tuple, list)) else (o,)
            for t in ts:
                if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel():
                    out[name] = max(out.get(name, 0.0), float(t.detach().abs().max()))
        return fn

    for name, m in module.named_modules():
        if name:
            hooks.append(m.register_forward_hook(hook(name)))
    try:
        with torch.no_grad():
            for x in samples:
                module(*to_torch_inputs(x))
    finally:
        for h in hooks:
            h.remove()
    return out


def audit_fp16(program: "Program", samples: Sequence[Sequence[Any]] = ()) -> Fp16Audit:
    """Run the FP32 program over `samples` (default: its example inputs) and list FP16 hazards."""
    samples = list(samples) or [tuple(program.example_inputs)]
    ep = export_graph(program.module, program.example_inputs)
    gm = ep.module()
    stats = _record_ranges(gm, samples)
    audit = Fp16Audit(program.name, samples=len(samples), max_abs={k: v["max_abs"] for k, v in stats.items()},
                      module_max=_module_ranges(program.module, samples))
    aten = torch.ops.aten
    ln_targets = {aten.layer_norm.default, aten.native_layer_norm.default}
    red_targets = {aten.mean.dim, aten.sum.dim_IntList, aten.mean.default, aten.sum.default, aten.var.correction}
    pow_targets = {aten.pow.Tensor_Scalar, aten.pow.Tensor_Tensor, aten.square.default}
    for n in gm.graph.nodes:
        if n.op != "call_function":
            continue
        path, _ = module_path(n)
        s = stats.get(n.name, {"max_abs": 0.0, "span": 0.0, "finite": 1.0})
        m = s["max_abs"]
        if not s["finite"]:
            audit.findings.append(Finding("error", "overflow", n.name, path, "non-finite values already in FP32",
                                          "fix the model: FP16 cannot represent them either", math.inf))
        elif m >= OVERFLOW_ERROR or m >= OVERFLOW_WARN:
            kind = "pow" if n.target in pow_targets else "overflow"
            sev = "error" if m >= OVERFLOW_ERROR else "warning"
            audit.findings.append(Finding(sev, kind, n.name, path, f"max |x| = {m:.4g} (FP16 limit 65504)",
                                          "keep this layer in FP32 or rescale it (e.g. normalise earlier)", m))
        if n.target in ln_targets:
            width = int(math.prod(n.args[1]))
            if width >= LAYERNORM_UNSAFE_WIDTH:
                audit.findings.append(Finding("error", "layer_norm", n.name, path,
                                              f"native LayerNorm over {width} features: ExecuTorch's portable FP16 kernel is wrong at >= 256",
                                              "swapped for SafeLayerNorm (4-D means, delegated to XNNPACK)", width))
        elif n.target in red_targets:
            inp = n.args[0].meta.get("val") if hasattr(n.args[0], "meta") else None
            out = n.meta.get("val")
            if inp is not None and out is not None and out.numel():
                extent = inp.numel() // max(out.numel(), 1)
                dims = sorted(d % inp.dim() for d in (n.args[1] if len(n.args) > 1 and n.args[1] else range(inp.dim())))
                if extent >= REDUCTION_WARN:
                    audit.findings.append(Finding("warning", "reduction", n.name, path,
                                                  f"reduction over {extent} elements accumulates in FP16",
                                                  "keep it in FP32 or reduce in chunks", extent))
                elif not (inp.dim() == 4 and dims == [2, 3]):
                    audit.findings.append(Finding("info", "reduction", n.name, path,
                                                  f"mean over dims {dims} of a {inp.dim()}-D tensor runs on the portable kernel",
                                                  "write it as a 4-D mean over dims (2, 3) to delegate it", extent))
        elif n.target in (aten.softmax.int, aten._softmax.default):
            src = n.args[0].name if hasattr(n.args[0], "name") else ""
            span = stats.get(src, {}).get("span", 0.0)
            if span >= SOFTMAX_SPAN_WARN:
                audit.findings.append(Finding("warning", "softmax", n.name, path, f"logits span {span:.4g}",
                                              "scale the logits down or keep the softmax in FP32", span))
    return audit


def make_fp16_safe(module: nn.Module, audit: Fp16Audit | None = None, *, all_layernorms: bool = False) -> tuple[nn.Module, list[str]]:
    """A copy of `module` with unsafe LayerNorms swapped for SafeLayerNorm; returns (module, changed paths).

    Swaps the LayerNorm modules the audit flagged (width >= 256), or every last-dim LayerNorm
    with `all_layernorms` (XNNPACK then delegates them all).
    """
    flagged = set(audit.unsafe_layernorm_modules()) if audit is not None else set()
    out = copy.deepcopy(module)
    changed = []
    for name, m in list(out.named_modules()):
        width = _layernorm_width(m)
        if width is None or not name:
            continue
        if all_layernorms or name in flagged or (audit is None and width >= LAYERNORM_UNSAFE_WIDTH):
            parent_name, _, attr = name.rpartition(".")
            parent = out.get_submodule(parent_name) if parent_name else out
            setattr(parent, attr, SafeLayerNorm.from_module(m))
            changed.append(name)
    if audit is not None:
        audit.fixed = changed
    return out, changed


class Fp32Island(nn.Module):
    """Runs a submodule in FP32 inside a half-precision model (for layers the audit says overflow)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.fp32_island = module.float()

    def forward(self, *xs):
        dt = next((x.dtype for x in xs if isinstance(x, torch.Tensor) and x.is_floating_point()), torch.float16)
        out = self.fp32_island(*[x.float() if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in xs])
        if isinstance(out, (tuple, list)):
            return type(out)(o.to(dt) if o.is_floating_point() else o for o in out)
        return out.to(dt) if out.is_floating_point() else out


class HalfIO(nn.Module):
    """A half-precision copy of a module behind FP32 inputs and outputs; `fp32_modules`
    (dotted paths) stay FP32 islands inside it."""

    def __init__(self, module: nn.Module, fp32_modules: Sequence[str] = ()):
        super().__init__()
        self.half_model = copy.deepcopy(module).half()
        for name in fp32_modules:
            parent_name, _, attr = name.rpartition(".")
            parent = self.half_model.get_submodule(parent_name) if parent_name else self.half_model
            setattr(parent, attr, Fp32Island(getattr(parent, attr)))

    def forward(self, *xs: torch.Tensor):
        out = self.half_model(*[x.half() if x.is_floating_point() else x for x in xs])
        if isinstance(out, (tuple, list)):
            return tuple(o.float() if o.is_floating_point() else o for o in out)
        return out.float() if out.is_floating_point() else out


def explicit_promotion(gm: torch.fx.GraphModule) -> int:
    """Insert the casts eager type promotion implies (an FP32 tensor made in forward, e.g. a
    timestep embedding, meeting FP16 activations): ExecuTorch's edge dialect refuses ops whose
    float inputs differ in dtype. Returns the number of casts inserted."""
    n_casts = 0
    for n in list(gm.graph.nodes):
        if n.op != "call_function":
            continue
        out = n.meta.get("val")
        if not isinstance(out, torch.Tensor) or not out.is_floating_point():
            continue
        args = [a for a in n.args if isinstance(a, torch.fx.Node)]
        dts = {a.meta["val"].dtype for a in args
               if isinstance(a.meta.get("val"), torch.Tensor) and a.meta["val"].is_floating_point()}
        if len(dts) < 2:
            continue
        for a in args:
            v = a.meta.get("val")
            if isinstance(v, torch.Tensor) and v.is_floating_point() and v.dtype != out.dtype:
                with gm.graph.inserting_before(n):
                    c = gm.graph.call_function(torch.ops.aten._to_copy.default, (a,), {"dtype": out.dtype})
                c.meta["val"] = v.to(out.dtype)
                n.replace_input_with(a, c)
                n_casts += 1
    if n_casts:
        gm.recompile()
    return n_casts


def fp16_module(program: "Program", samples: Sequence[Sequence[Any]] = ()) -> tuple[nn.Module, Fp16Audit]:
    """The audited, fixed, half-precision module with FP32 I/O, and the audit (with what was fixed)."""
    audit = audit_fp16(program, samples)
    safe, _ = make_fp16_safe(program.module, audit)
    islands = [m for m in audit.overflow_modules() if _is_module(safe, m)]
    audit.fixed = audit.fixed + [f"{m} (kept FP32)" for m in islands]
    return HalfIO(safe, islands).eval(), audit


def _is_module(root: nn.Module, path: str) -> bool:
    try:
        root.get_submodule(path)
        return True
    except AttributeError:
        return False
