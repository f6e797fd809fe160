"""QDQ INT8 ONNX for ONNX Runtime and TensorRT: signed, symmetric, zero-point 0 everywhere.

TensorRT accepts only INT8 Q/DQ with zero-point 0. onnxruntime's `quantize_static` in
QDQ format with s8 activations and weights, `ActivationSymmetric` and `WeightSymmetric`,
gives exactly that shape (NNCF's default used UINT8 activations). Biases stay float
(`QuantizeBias: False`): an INT32 bias DequantizeLinear is neither INT8 nor needed by
TensorRT, which fuses the bias itself. `check_qdq` asserts the shape of every
QuantizeLinear/DequantizeLinear node; the exporters run it on every INT8 .onnx.

Float layers (mixed precision) are mapped onto ONNX nodes through the torch.onnx
metadata (`pkg.torch.onnx.name_scopes`: module scopes, then the FX node name), with the
same matching rule as the PT2E flow (edgeth.quantize.pt2e.matches).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from edgeth.errors import CheckFailed, InputError
from edgeth.quantize.pt2e import matches

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
# The ops quantized (as the XNNPACK quantizer does): the heavy compute plus the
# elementwise joins between them. Norms, softmax and activations stay float.
QUANT_OP_TYPES = ("Conv", "ConvTranspose", "MatMul", "Gemm", "Add", "Mul", "Concat", "AveragePool",
                  "GlobalAveragePool", "MaxPool")


def node_scope(node: Any) -> tuple[str, str]:
    """(fx node name, module path) of an ONNX node exported by torch.onnx (dynamo)."""
    md = {p.key: p.value for p in node.metadata_props}
    raw = md.get("pkg.torch.onnx.name_scopes", "")
    scopes = _parse_list(raw)
    if not scopes:
        return node.name.removeprefix("node_"), ""
    fx = scopes[-1]
    path = scopes[-2] if len(scopes) >= 2 else ""
    return fx, path


def _parse_list(raw: str) -> list[str]:
    import ast

    if not raw:
        return []
    try:
        v = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return []
    return [str(x) for x in v] if isinstance(v, (list, tuple)) else []


def nodes_for_layers(model: Any, float_layers: Iterable[str]) -> list[str]:
    """ONNX node names that belong to any of `float_layers` (module paths or FX node names)."""
    entries = [e for e in float_layers if e]
    if not entries:
        return []
    out = []
    for n in model.graph.node:
        fx, path = node_scope(n)
        if any(matches(e, fx, path) for e in entries):
            out.append(n.name)
    return out


class _Reader:
    """onnxruntime CalibrationDataReader over recorded input tuples."""

    def __init__(self, names: Sequence[str], samples: Sequence[Sequence[np.ndarray]]):
        self._it = iter([{n: np.ascontiguousarray(a, dtype=np.asarray(a).dtype) for n, a in zip(names, s)} for s in samples])

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # not needed for one pass
        pass


def quantize_qdq(src: str | os.PathLike, dst: str | os.PathLike, samples: Sequence[Sequence[np.ndarray]],
                 *, float_layers: Iterable[str] = (), per_channel: bool = True,
                 method: str = "minmax") -> dict[str, Any]:
    """FP32 .onnx -> QDQ INT8 .onnx (s8s8, symmetric, zero-point 0, float bias). Returns a report."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise InputError(f"unknown calibration method {method!r}", f"choose one of {', '.join(methods)}")
    if not samples:
        raise InputError("INT8 ONNX needs calibration inputs", "pass the captured calibration set (edgeth export --calib)")
    model = onnx.load(str(src))
    names = [i.name for i in model.graph.input]
    if any(len(s) != len(names) for s in samples):
        raise InputError(f"calibration samples do not match the model's {len(names)} inputs", "re-capture calibration")
    exclude = nodes_for_layers(model, float_layers)
    dst = Path(dst)
    with tempfile.TemporaryDirectory() as td, quiet_root_logger():
        tmp = Path(td) / "q.onnx"
        quantize_static(
            str(src), str(tmp), _Reader(names, samples), quant_format=QuantFormat.QDQ, per_channel=per_channel,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, nodes_to_exclude=exclude or None,
            op_types_to_quantize=list(QUANT_OP_TYPES), calibrate_method=methods[method],
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
        )
        problems = check_qdq(str(tmp))
        if problems:
            raise CheckFailed(f"QDQ model has {len(problems)} non-TensorRT Q/DQ nodes: {problems[0]}",
                              "report this: the quantizer settings no longer give s8 zero-point-0 Q/DQ")
        q = onnx.load(str(tmp))
        if unshare_constant_dq(q):
            onnx.save(q, str(tmp))
        os.replace(tmp, dst)
    n_q = sum(n.op_type == "QuantizeLinear" for n in q.graph.node)
    n_dq = sum(n.op_type == "DequantizeLinear" for n in q.graph.node)
    return {"format": "QDQ", "activations": "int8 symmetric per-tensor", "weights": "int8 symmetric per-channel"
            if per_channel else "int8 symmetric per-tensor", "bias": "float", "calibration_samples": len(samples),
            "calibration_method": method, "float_nodes": exclude, "quantize_linear": n_q, "dequantize_linear": n_dq}


def unshare_constant_dq(model: Any) -> int:
    """Give every consumer of a DequantizeLinear of a constant its own DQ node with its own copies
    of the INT8 initializer, scale and zero-point; returns how many DQ nodes were added (the
    model is edited in place).

    quantize_static quantizes a constant shared by several nodes (GELU's 1.0 in every block)
    once and feeds all of them from one DQ. ONNX Runtime's exact INT8 mode on x86 without VNNI
    (`session.x64quantprecision`, targets/onnx/runner.py) then converts that initializer to
    uint8 once per consumer and refuses the model ("AddInitializedOrtValue Attempt to replace
    the existing tensor", onnxruntime 1.31). The values are unchanged, so are the results."""
    from onnx import helper

    inits = {i.name: i for i in model.graph.initializer}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for x in n.input:
            consumers.setdefault(x, []).append(n)
    graph_out = {o.name for o in model.graph.output}
    made, nodes = 0, []
    for n in model.graph.node:
        nodes.append(n)
        users = list({id(u): u for u in consumers.get(n.output[0], [])}.values()) if n.output else []
        if n.op_type != "DequantizeLinear" or n.input[0] not in inits or len(users) < 2 or n.output[0] in graph_out:
            continue
        for k, user in enumerate(users[1:], 1):
            names = []
            for name in n.input:  # the INT8 values, the scale and the zero-point: all converted per DQ
                if name not in inits:
                    names.append(name)
                    continue
                copy_init = type(inits[name])()
                copy_init.CopyFrom(inits[name])
                copy_init.name = f"{name}__{k}"
                model.graph.initializer.append(copy_init)
                names.append(copy_init.name)
            out = f"{n.output[0]}__{k}"
            nodes.append(helper.make_node("DequantizeLinear", names, [out], name=f"{n.name}__{k}",
                                          **{a.name: helper.get_attribute_value(a) for a in n.attribute}))
            user.input[:] = [out if x == n.output[0] else x for x in user.input]
            made += 1
    if made:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    return made


@contextlib.contextmanager
def quiet_root_logger():
    """onnxruntime.quantization warns through the root logger ("consider pre-processing")."""
    import logging

    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(old)


def check_qdq(model: Any) -> list[str]:
    """Problems with any Q/DQ node: not INT8, zero-point missing or non-zero, scale not positive float."""
    import onnx
    from onnx import numpy_helper

    if isinstance(model, (str, os.PathLike)):
        model = onnx.load(str(model))
    inits = {i.name: i for i in model.graph.initializer}
    consts = {}
    for n in model.graph.node:  # Constant nodes can carry scales/zero-points too
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = a.t
    problems = []
    for n in model.graph.node:
        if n.op_type not in QDQ_OPS:
            continue
        if len(n.input) < 3 or not n.input[2]:
            problems.append(f"{n.name}: {n.op_type} without a zero-point (defaults to uint8)")
            continue
        zp_t = inits.get(n.input[2]) or consts.get(n.input[2])
        sc_t = inits.get(n.input[1]) or consts.get(n.input[1])
        if zp_t is None or sc_t is None:
            problems.append(f"{n.name}: scale/zero-point are not constants")
            continue
        zp, sc = numpy_helper.to_array(zp_t), numpy_helper.to_array(sc_t)
        if zp.dtype != np.int8:
            problems.append(f"{n.name}: {n.op_type} zero-point dtype {zp.dtype}, TensorRT needs int8")
        elif np.any(zp != 0):
            problems.append(f"{n.name}: {n.op_type} zero-point {zp.ravel()[:4].tolist()} != 0")
        if sc.dtype not in (np.float32, np.float16) or np.any(sc <= 0):
            problems.append(f"{n.name}: {n.op_type} scale must be positive float")
    return problems


def qdq_summary(model: Any) -> dict[str, int]:
    """Counts of Q/DQ nodes and of compute nodes fed by a DequantizeLinear (run INT8 on TensorRT/ORT)."""
    import onnx

    if isinstance(model, (str, os.PathLike)):
        model = onnx.load(str(model))
    dq_out = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    compute = [n for n in model.graph.node if n.op_type not in (*QDQ_OPS, "Constant")]
    fed = [n for n in compute if any(i in dq_out for i in n.input)]
    return {"quantize_linear": sum(n.op_type == "QuantizeLinear" for n in model.graph.node),
            "dequantize_linear": len(dq_out), "int8_compute_nodes": len(fed), "compute_nodes": len(compute)}
