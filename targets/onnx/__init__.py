"""ONNX target: <program>.onnx (opset 18, single file) run with ONNX Runtime on CPU. See README.md."""
from __future__ import annotations

from edgeth.targets import Target, register_target


@register_target("onnx")
class OnnxTarget(Target):
    file_suffix = ".onnx"
    backend = "onnxruntime"
    export_needs = (("torch", "onnx", "onnxscript"), "pip install onnx onnxscript")
    runtime_needs = (("onnxruntime",), "pip install onnxruntime")
