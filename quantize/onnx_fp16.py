"""FP32 -> FP16 ONNX conversion, owned here because neither stock tool converts every model.

Measured: onnxconverter-common's converter broke a codec (MatMul type clash) and
onnxruntime's transformers float16 tool failed on a renderer (duplicate node names).
This converter works on types, not node names:

  * every float32 tensor gets a dtype: FP16 when its producer runs in FP16, else FP32;
  * every node input has a required dtype: FP16 inside the FP16 region, FP32 for nodes
    kept in float (`keep_fp32`, e.g. flagged by the FP16 audit) and for inputs the ONNX
    spec fixes to float32 (Resize scales, ...);
  * where the two differ a Cast is inserted (one per tensor and dtype);
  * initializers and Constant nodes are converted in place when every consumer wants
    FP16 (values clipped to ±65504, counted in the report), else duplicated;
  * `keep_io_types`: graph inputs/outputs stay FP32 with Casts at the edges.

Value infos are dropped and re-inferred. Graphs with subgraphs (If/Loop) are refused.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from edgeth.errors import UnsupportedOp

FP16_MAX = 65504.0
_F32, _F16 = 1, 10  # onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16 (onnx imported lazily)
# (op_type, input index) whose float input must stay float32 by the ONNX spec
FP32_INPUTS = {("Resize", 1), ("Resize", 2), ("Upsample", 1)}
# ops whose float attributes set an output dtype
_DTYPE_ATTR = {"Cast": "to", "EyeLike": "dtype", "RandomNormalLike": "dtype", "RandomUniformLike": "dtype"}


def convert_fp16(src: Any, dst: str | os.PathLike | None = None, *, keep_io_types: bool = True,
                 keep_fp32: Iterable[str] = ()) -> tuple[Any, dict[str, Any]]:
    """Convert an FP32 ONNX model (path or ModelProto). Returns (model, report); saves to dst if given."""
    import onnx

    model = _load_inferred(src)
    p = _Fp16Pass(model.graph, set(keep_fp32))
    p.mark_fp16_outputs()
    p.convert_constants()
    if not keep_io_types:
        p.convert_inputs()
    p.insert_casts()
    p.convert_outputs(keep_io_types)
    p.assemble()
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model)
    report = p.report
    report["fp16_nodes"] = sum(1 for v in p.in_fp16.values() if v)
    report["io"] = "fp32" if keep_io_types else "fp16"
    if dst is not None:
        onnx.save(model, str(dst))
    return model, report


def _load_inferred(src: Any) -> Any:
    """A private copy of the model (never the caller's), subgraphs refused, shapes inferred."""
    import onnx

    model = onnx.load(str(src)) if isinstance(src, (str, os.PathLike)) else src
    model = onnx.ModelProto.FromString(model.SerializeToString())  # never mutate the caller's model
    for n in model.graph.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in n.attribute):
            raise UnsupportedOp(f"FP16 conversion: node {n.name} ({n.op_type}) has a subgraph",
                                "export the program without control flow (torch.cond/loops)")
    return onnx.shape_inference.infer_shapes(model)


class _Fp16Pass:
    """Graph state of one conversion: original dtypes (`dtype`), dtypes after conversion (`actual`),
    consumers of every tensor, the FP16 region and the report. Steps run in the order of their numbers."""

    def __init__(self, g: Any, keep: set[str]):
        self.g = g
        self.keep = keep
        # dtype of every tensor before conversion
        dtype: dict[str, int] = {}
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            dtype[vi.name] = vi.type.tensor_type.elem_type
        for init in g.initializer:
            dtype[init.name] = init.data_type
        self.const_nodes = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
        for name, n in self.const_nodes.items():
            has_value = n.attribute and n.attribute[0].name == "value"
            dtype[name] = n.attribute[0].t.data_type if has_value else dtype.get(name, 0)
        self.dtype = dtype
        self.inits = {i.name: i for i in g.initializer}
        self.in_fp16 = {n.name: n.name not in keep and n.op_type != "Constant" for n in g.node}
        self.consumers: dict[str, list[tuple[Any, int]]] = {}
        for n in g.node:
            for k, t in enumerate(n.input):
                if t:
                    self.consumers.setdefault(t, []).append((n, k))
        self.report: dict[str, Any] = {"casts": 0, "clipped_values": 0, "fp32_nodes": sorted(keep),
                                       "converted_initializers": 0}
        self.actual: dict[str, int] = dict(dtype)
        self.new_nodes_front: list[Any] = []  # duplicated Constant nodes, placed first
        self.cast_nodes: list[tuple[int, Any]] = []  # (insert before node index, node)
        self.tail: list[Any] = []  # output Casts, placed last

    def wants(self, n: Any, k: int) -> int:
        """The dtype input k of node n requires."""
        return _F16 if self.in_fp16[n.name] and (n.op_type, k) not in FP32_INPUTS else _F32

    def mark_fp16_outputs(self) -> None:
        """1. node outputs in the FP16 region become FP16; dtype-setting attributes follow"""
        from onnx import numpy_helper

        for n in self.g.node:
            if n.op_type == "Constant":
                continue
            if self.in_fp16[n.name]:
                attr = _DTYPE_ATTR.get(n.op_type)
                for a in n.attribute:
                    if attr and a.name == attr and a.i == _F32:
                        a.i = _F16
                    if n.op_type == "ConstantOfShape" and a.name == "value" and a.t.data_type == _F32:
                        a16 = _to16(numpy_helper.to_array(a.t), self.report)
                        a.t.CopyFrom(numpy_helper.from_array(a16, a.t.name))
                for o in n.output:
                    if self.dtype.get(o) == _F32:
                        self.actual[o] = _F16

    def convert_constants(self) -> None:
        """2. constants (initializers, Constant nodes): convert in place or duplicate for FP16 consumers"""
        from onnx import helper, numpy_helper

        inits, const_nodes, actual = self.inits, self.const_nodes, self.actual
        new_inits = []
        for name in list(inits) + list(const_nodes):
            if self.dtype.get(name) != _F32:
                continue
            uses = self.consumers.get(name, [])
            want16 = [u for u in uses if self.wants(*u) == _F16]
            if not want16:
                continue
            is_init = name in inits
            arr = numpy_helper.to_array(inits[name] if is_init else const_nodes[name].attribute[0].t)
            a16 = _to16(arr, self.report)
            self.report["converted_initializers"] += 1
            if len(want16) == len(uses) and not any(o.name == name for o in self.g.output):
                if is_init:
                    inits[name].CopyFrom(numpy_helper.from_array(a16, name))
                else:
                    const_nodes[name].attribute[0].t.CopyFrom(numpy_helper.from_array(a16))
                actual[name] = _F16
            else:
                name16 = _fresh(f"{name}__fp16", actual)
                if is_init:
                    new_inits.append(numpy_helper.from_array(a16, name16))
                else:
                    self.new_nodes_front.append(
                        helper.make_node("Constant", [], [name16], name=name16, value=numpy_helper.from_array(a16)))
                actual[name16] = _F16
                for n, k in want16:
                    n.input[k] = name16
        self.g.initializer.extend(new_inits)

    def convert_inputs(self) -> None:
        """3. graph inputs (only when I/O types are not kept)"""
        for vi in self.g.input:
            if vi.type.tensor_type.elem_type == _F32 and vi.name not in self.inits:
                vi.type.tensor_type.elem_type = _F16
                self.actual[vi.name] = _F16

    def insert_casts(self) -> None:
        """4. casts where a consumer's required dtype differs from the tensor's"""
        from onnx import helper

        dtype, actual = self.dtype, self.actual
        casts: dict[tuple[str, int], str] = {}
        order = {id(n): i for i, n in enumerate(self.g.node)}
        for n in list(self.g.node):
            for k, t in enumerate(n.input):
                if not t or actual.get(t) not in (_F16, _F32) or dtype.get(t, actual.get(t)) not in (_F16, _F32):
                    continue
                need = self.wants(n, k)
                if actual[t] == need:
                    continue
                key = (t, need)
                if key not in casts:
                    out = _fresh(f"{t}__to{'16' if need == _F16 else '32'}", actual)
                    self.cast_nodes.append((order[id(n)], helper.make_node("Cast", [t], [out], name=out, to=need)))
                    casts[key] = out
                    actual[out] = need
                n.input[k] = casts[key]
        self.report["casts"] += len(self.cast_nodes)

    def convert_outputs(self, keep_io_types: bool) -> None:
        """5. graph outputs: FP16 ones get an FP32 Cast at the edge, or become FP16 outputs"""
        from onnx import helper

        for vo in self.g.output:
            t = vo.name
            if self.actual.get(t) == _F16 and keep_io_types:
                inner = _fresh(f"{t}__fp16", self.actual)
                # the pending step-4 Casts read the FP16 tensor too (an output also consumed by an
                # FP32-kept node): rewire them with the graph's nodes, else they would read the
                # final output Cast that only runs at the very end (graph out of order)
                for n in [*self.g.node, *(cn for _, cn in self.cast_nodes)]:
                    for k, o in enumerate(n.output):
                        if o == t:
                            n.output[k] = inner
                    for k, i in enumerate(n.input):
                        if i == t:
                            n.input[k] = inner
                self.tail.append(helper.make_node("Cast", [inner], [t], name=f"{t}__out_cast", to=_F32))
                self.report["casts"] += 1
            elif self.actual.get(t) == _F16:
                vo.type.tensor_type.elem_type = _F16

    def assemble(self) -> None:
        """Final node order: duplicated Constants, nodes with their Casts, output Casts; value infos dropped."""
        g = self.g
        nodes = list(g.node)
        for idx, cn in sorted(self.cast_nodes, key=lambda x: -x[0]):
            nodes.insert(idx, cn)
        nodes = self.new_nodes_front + nodes + self.tail
        del g.node[:]
        g.node.extend(nodes)
        del g.value_info[:]


def _to16(a: np.ndarray, report: dict[str, Any]) -> np.ndarray:
    over = int(np.sum(np.abs(a) > FP16_MAX))
    report["clipped_values"] += over
    return np.clip(a, -FP16_MAX, FP16_MAX).astype(np.float16)


def _fresh(base: str, taken: dict[str, Any]) -> str:
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name


def save(model: Any, dst: str | os.PathLike) -> Path:
    import onnx

    from edgeth.io_utils import atomic_path

    with atomic_path(dst) as tmp:
        onnx.save(model, str(tmp))
    return Path(dst)
