"""TensorRT lint: what TensorRT's ONNX parser and builder will reject, found before a device is flashed.

Follows TensorRT's ONNX parser support matrix (onnx-tensorrt docs/operators.md, one table per
release, kept as data in trt_onnx_ops.json with its commit) and TensorRT's explicit-quantization
rules (developer guide, "Working with Quantized Types": signed INT8 Q/DQ with zero-point 0,
per-tensor activations, per-channel weights on the output-channel axis, Q always feeding DQ).

Rules (each Finding names the ONNX node and the PyTorch module it came from):
  op-unsupported   op missing from the table or marked N, or a non-ONNX domain: error
  opset            model opset above what the release documents: warning
  gridsample-5d    GridSample on a rank-5 input (IGridSampleLayer is 4-D): error
  conv3d           Conv/ConvTranspose on rank-5 input: warning (no DLA, slow GPU kernels)
  qdq-type         Q/DQ zero-point type not in the release's types (UINT8 etc.): error
  qdq-zero-point   a non-zero zero-point: error
  qdq-axis         per-channel scale on an activation, or on the wrong weight axis: error
  qdq-pair         Q not followed by DQ, or a weight DQ whose data input is float: warning
  int64            run-time INT64 index math / INT64 I/O that the release narrows to INT32: warning
  profile          a dynamic input without min/opt/max in the recipe, or min<=opt<=max broken: error

Shape legend: rank = number of dims of a tensor (N,C,H,W = 4; N,C,D,H,W = 5).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from edgeth.errors import InputError

OPS_FILE = Path(__file__).with_name("trt_onnx_ops.json")
DEFAULT_VERSION = "10"
QDQ = ("QuantizeLinear", "DequantizeLinear")
ONNX_DTYPE = {1: "FP32", 2: "UINT8", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL", 10: "FP16", 11: "DOUBLE",
              16: "BF16", 21: "UINT4", 22: "INT4"}
INDEX_MATH = frozenset({"Add", "Sub", "Mul", "Div", "Mod", "Neg", "Range", "CumSum", "ArgMax", "ArgMin"})
# which axis of a weight tensor holds output channels, per consumer op (Gemm: see transB)
WEIGHT_AXIS = {"Conv": 0, "ConvTranspose": 1, "MatMul": -1}


@dataclass
class Finding:
    severity: str  # "error" | "warning"
    rule: str
    node: str  # ONNX node name (or input name for profile findings)
    module: str  # PyTorch module path ("<root>" when unknown)
    message: str
    advice: str

    def line(self) -> str:
        return f"{self.severity}: [{self.rule}] {self.message} (node {self.node}, module {self.module}) — {self.advice}"

    def to_json(self) -> dict[str, str]:
        return asdict(self)


@lru_cache(maxsize=1)
def op_tables() -> dict[str, Any]:
    return json.loads(OPS_FILE.read_text())


def resolve_version(version: str | None) -> str:
    """A table key ("8.6", "10.1") for a requested TensorRT version ("10", "10.x", "10.3", "8.6")."""
    tables = op_tables()["versions"]
    text = (version or DEFAULT_VERSION).strip().lower().removesuffix(".x")
    if text in tables:
        return text
    major = text.split(".")[0]
    same = sorted((k for k in tables if k.split(".")[0] == major), key=lambda k: [int(x) for x in k.split(".")])
    if same:
        return same[-1]  # the newest table of that major release
    raise InputError(f"no TensorRT operator table for version {version!r}",
                     f"use one of: {', '.join(sorted(tables))} (or 10.x); add a table from onnx-tensorrt's docs/operators.md")


def _module(node, producers: dict, consumers: dict) -> str:
    """The PyTorch module a node came from; Q/DQ nodes (no exporter metadata) borrow a neighbour's."""
    from edgeth.targets.onnx.exporter import node_module_path

    path = node_module_path(node)
    if path != "<root>" or node.op_type not in QDQ:
        return path
    for out in node.output:
        for c in consumers.get(out, []):
            if c.op_type not in QDQ:
                return node_module_path(c)
    src = producers.get(node.input[0])
    return node_module_path(src) if src is not None else path


class _Graph:
    """An inferred ONNX graph with the lookups the rules need."""

    def __init__(self, model):
        import onnx

        try:
            model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
        except Exception:  # inference is best effort; rank-dependent rules then see fewer tensors
            pass
        self.model, g = model, model.graph
        self.init = {i.name: i for i in g.initializer}
        self.const = set(self.init) | {o for n in g.node if n.op_type == "Constant" for o in n.output}
        self.types: dict[str, Any] = {}
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            self.types[vi.name] = vi.type.tensor_type
        self.producers = {o: n for n in g.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)

    def rank(self, name: str) -> int | None:
        if name in self.init:
            return len(self.init[name].dims)
        t = self.types.get(name)
        return len(t.shape.dim) if t is not None and t.HasField("shape") else None

    def dtype(self, name: str) -> str | None:
        if name in self.init:
            return ONNX_DTYPE.get(self.init[name].data_type)
        t = self.types.get(name)
        return ONNX_DTYPE.get(t.elem_type) if t is not None else None

    def array(self, name: str):
        from onnx import numpy_helper

        if name in self.init:
            return numpy_helper.to_array(self.init[name])
        src = self.producers.get(name)
        if src is not None and src.op_type == "Constant":
            return numpy_helper.to_array(src.attribute[0].t)
        return None

    def weight_source(self, name: str) -> str | None:
        """The initializer behind a tensor, through Identity/Q/DQ (None for run-time data)."""
        seen = 0
        while name not in self.const and seen < 4:
            src = self.producers.get(name)
            if src is None or src.op_type not in ("Identity",) + QDQ:
                return None
            name, seen = src.input[0], seen + 1
        return name if name in self.const else None


def lint_model(model, version: str | None = None, recipe: dict | None = None) -> list[Finding]:
    """Every finding for one ONNX model (a ModelProto); `recipe` is its <program>.trt.json (profiles)."""
    key = resolve_version(version)
    table = op_tables()["versions"][key]
    g = _Graph(model)
    out: list[Finding] = []
    opset = next((o.version for o in g.model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and opset > table["opset_max"]:
        out.append(Finding("warning", "opset", "<model>", "<root>",
                           f"model opset {opset} is above the opset {table['opset_max']} TensorRT {key} documents",
                           f"build with a newer TensorRT or check each op's opset-{opset} form imports"))
    for node in g.model.graph.node:
        mod = _module(node, g.producers, g.consumers)
        out += [Finding(sev, rule, node.name or node.op_type, mod, msg, fix)
                for sev, rule, msg, fix in _node_rules(node, g, table, key)]
    out += _io_int64(g, key, table)
    out += profile_findings(g, recipe)
    return out


def _node_rules(node, g: _Graph, table: dict, key: str) -> list[tuple[str, str, str, str]]:
    op = node.op_type
    rec = table["ops"].get(op)
    if node.domain not in ("", "ai.onnx"):
        return [("error", "op-unsupported", f"{node.domain}::{op} is a custom-domain op", "TensorRT needs a plugin for it; "
                 "export with standard ONNX ops")]
    if rec is None or not rec["supported"]:
        return [("error", "op-unsupported", f"ONNX op {op} is not supported by TensorRT {key}'s ONNX parser",
                 "rewrite it with supported ops or run this part on the host")]
    found = []
    rank = g.rank(node.input[0]) if node.input else None
    if op == "GridSample" and rank == 5:
        found.append(("error", "gridsample-5d", "5-D GridSample (IGridSampleLayer is 4-D only)",
                      "sample each depth slice with 4-D grid_sample, or fold depth into the batch"))
    if op in ("Conv", "ConvTranspose") and rank == 5:
        found.append(("warning", "conv3d", f"3-D convolution ({op} on a rank-5 input): no DLA support, slow GPU kernels",
                      "factorize into 2-D spatial convs over frames folded into the batch + a temporal 1-D conv"))
    if op in QDQ:
        found += _qdq_rules(node, g, rec)
    if op in INDEX_MATH and key.startswith("8.") and g.dtype(node.output[0]) == "INT64" \
            and any(i and i not in g.const for i in node.input):
        found.append(("warning", "int64", f"INT64 index math ({op}) computed at run time; TensorRT {key} narrows it to "
                      "INT32 (values beyond ±2^31 clamp)", "compute indices in int32, or use TensorRT 10"))
    return found


def _qdq_rules(node, g: _Graph, rec: dict) -> list[tuple[str, str, str, str]]:
    found = []
    zp = node.input[2] if len(node.input) > 2 and node.input[2] else None
    zp_type = g.dtype(zp) if zp else ("UINT8" if node.op_type == "QuantizeLinear" else None)  # ONNX default: uint8
    allowed = [t for t in rec.get("types", []) if t not in ("FP32", "FP16", "BF16")] or ["INT8"]
    if zp_type and zp_type not in allowed:
        found.append(("error", "qdq-type", f"{node.op_type} with {zp_type} zero-point; TensorRT accepts "
                      f"{'/'.join(allowed)} only", "quantize symmetric signed INT8 (onnxruntime s8s8)"))
    z = g.array(zp) if zp else None
    if z is not None and z.size and (z != 0).any():
        found.append(("error", "qdq-zero-point", f"{node.op_type} zero-point {z.ravel()[:4].tolist()} is not 0 "
                      "(asymmetric quantization)", "quantize symmetric (zero-point 0)"))
    scale = g.array(node.input[1])
    if scale is not None and scale.size > 1:
        found += _axis_rules(node, g)
    if node.op_type == "QuantizeLinear":
        users = g.consumers.get(node.output[0], [])
        if not users or any(u.op_type != "DequantizeLinear" for u in users):
            found.append(("warning", "qdq-pair", "QuantizeLinear not followed by DequantizeLinear: TensorRT cannot fuse it",
                          "emit Q/DQ pairs (onnxruntime QDQ format)"))
    return found


def _axis_rules(node, g: _Graph) -> list[tuple[str, str, str, str]]:
    weight = g.weight_source(node.input[0])
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    if weight is None:
        return [("error", "qdq-axis", f"per-channel {node.op_type} on an activation (axis {axis})",
                 "quantize activations per tensor; per-channel scales are for weights")]
    rank = g.rank(weight) or 0
    axis = axis + rank if axis < 0 else axis
    for user in g.consumers.get(node.output[0], []):
        want = WEIGHT_AXIS.get(user.op_type)
        if user.op_type == "Gemm":
            want = 0 if any(a.name == "transB" and a.i for a in user.attribute) else 1
        if want is None:
            continue
        want = want + rank if want < 0 else want
        if axis != want:
            return [("error", "qdq-axis", f"per-channel weight scale on axis {axis}; {user.op_type} needs the output-channel "
                     f"axis {want}", "quantize weights per output channel")]
    return []


def _io_int64(g: _Graph, key: str, table: dict) -> list[Finding]:
    if not key.startswith("8."):
        return []
    g_io = [(i.name, "input") for i in g.model.graph.input if i.name not in g.init] + \
           [(o.name, "output") for o in g.model.graph.output]
    return [Finding("warning", "int64", name, "<root>", f"graph {kind} {name!r} is INT64; TensorRT {key} binds it as INT32",
                    "use int32 for index tensors at the program boundary") for name, kind in g_io if g.dtype(name) == "INT64"]


def profile_findings(g: _Graph, recipe: dict | None) -> list[Finding]:
    """Every dynamic graph input has a min/opt/max profile in the recipe, with min <= opt <= max."""
    shapes = {i["name"]: i for i in (recipe or {}).get("inputs", [])}
    out = []
    for vi in g.model.graph.input:
        if vi.name in g.init:
            continue
        dims = vi.type.tensor_type.shape.dim
        dynamic = [k for k, d in enumerate(dims) if d.dim_param or d.dim_value <= 0]
        if not dynamic:
            continue
        p = shapes.get(vi.name)
        if p is None or any(k not in p for k in ("min", "opt", "max")):
            out.append(Finding("error", "profile", vi.name, "<root>", f"dynamic input {vi.name!r} (dims {dynamic}) has no "
                               "min/opt/max optimization profile", "re-export: the recipe's inputs list the profile"))
        elif not all(len(p[k]) == len(dims) for k in ("min", "opt", "max")) or \
                not all(a <= b <= c for a, b, c in zip(p["min"], p["opt"], p["max"])):
            out.append(Finding("error", "profile", vi.name, "<root>", f"profile of {vi.name!r} is not min<=opt<=max of rank "
                               f"{len(dims)}: {p['min']} / {p['opt']} / {p['max']}", "fix the dynamic ranges and re-export"))
    return out


def lint_file(onnx_path: Path, version: str | None = None, recipe: dict | None = None) -> list[Finding]:
    import onnx

    from edgeth.errors import BundleError

    try:
        model = onnx.load(str(onnx_path))
    except Exception as e:
        raise BundleError(f"cannot read {Path(onnx_path).name}: {e}", "re-export the bundle") from None
    return lint_model(model, version, recipe)


def lint_bundle(bundle_dir: Path, version: str | None = None) -> dict[str, list[Finding]]:
    """{program: findings} for every TensorRT artifact of a bundle (ONNX + its recipe's profiles)."""
    from edgeth.bundle.io import load_bundle
    from edgeth.targets.tensorrt.exporter import load_recipe

    b = load_bundle(bundle_dir)
    if "tensorrt" not in b.manifest.get("targets", {}):
        raise InputError(f"bundle {bundle_dir} has no tensorrt target", "export it with --target tensorrt")
    resolve_version(version)  # a bad version fails before any file is read
    out = {}
    for p in b.manifest["programs"]:
        art = p["artifacts"].get("tensorrt")
        if not art:
            continue
        onnx_path = b.artifact_dir("tensorrt") / art["files"][0]
        rec_path = onnx_path.with_name(onnx_path.stem + ".trt.json")
        out[p["name"]] = lint_file(onnx_path, version, load_recipe(rec_path) if rec_path.exists() else None)
    return out
