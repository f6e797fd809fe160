"""Two INT8 GEMMs whose exact result ONNX Runtime's U8S8 kernel on x86 without VNNI cannot give.

u8 255 x s8 127, summed in pairs, is 64,770: past the int16 that VPMADDUBSW saturates to.
Models: MatMulInteger (what quantize_dynamic writes) and a Q/DQ MatMul (what quantize_static
writes; ORT turns s8 activations into u8 on x86). `errors(opts)` runs both through ONNX
Runtime and returns the relative error against the exact result in float64.

Run as a script (`python tests/onnx_int8_exact.py`) it prints {"edgeth": ..., "default": ...}
as JSON: edgeth's session options vs ONNX Runtime's defaults, which is what
tests/test_targets_onnx.py runs under an emulated AVX2-only CPU (qemu-x86_64 -cpu Haswell).
"""
from __future__ import annotations

import json

import numpy as np

K, N = 64, 8


def models():
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh

    def model(nodes, x, y, init):
        return h.make_model(h.make_graph(nodes, "g", [x], [y], init), opset_imports=[h.make_opsetid("", 18)], ir_version=9)

    w = np.full((K, N), 127, np.int8)
    w[:, 1::2] = -128
    a = np.full((1, K), 255, np.uint8)
    mmi = model([h.make_node("MatMulInteger", ["a", "w"], ["y"])], h.make_tensor_value_info("a", T.UINT8, [1, K]),
                h.make_tensor_value_info("y", T.INT32, [1, N]), [nh.from_array(w, "w")])
    yield "MatMulInteger", mmi, a, a.astype(np.float64) @ w.astype(np.float64)

    wq = np.full((K, N), 127, np.int8)
    sx, sw = np.float32(1 / 127), np.float32(0.01)
    nodes = [h.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]), h.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             h.make_node("DequantizeLinear", ["w", "sw", "zw"], ["wd"]), h.make_node("MatMul", ["xd", "wd"], ["y"])]
    init = [nh.from_array(wq, "w"), nh.from_array(np.array(sx), "sx"), nh.from_array(np.array(0, np.int8), "zx"),
            nh.from_array(np.array(sw), "sw"), nh.from_array(np.array(0, np.int8), "zw")]
    x = np.ones((1, K), np.float32)
    qdq = model(nodes, h.make_tensor_value_info("x", T.FLOAT, [1, K]), h.make_tensor_value_info("y", T.FLOAT, [1, N]), init)
    yield "QDQ MatMul", qdq, x, (np.round(x / sx) * sx).astype(np.float64) @ (wq * sw).astype(np.float64)


def errors(make_session) -> dict[str, float]:
    """{model: max relative error vs exact}; make_session(model_bytes) -> an InferenceSession."""
    out = {}
    for name, m, x, ref in models():
        y = make_session(m.SerializeToString()).run(None, {m.graph.input[0].name: x})[0]
        out[name] = float(np.abs(y.astype(np.float64) - ref).max() / np.abs(ref).max())
    return out


def default_session(data: bytes):
    import onnxruntime as ort

    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


if __name__ == "__main__":
    from edgeth.targets.onnx.runner import session

    print(json.dumps({"edgeth": errors(session), "default": errors(default_session)}))
