"""TensorRT target: ONNX + build recipe exported anywhere; engine built and run on an NVIDIA GPU.
See README.md for the artifact layout and how to build the engine on a Jetson.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from edgeth.targets import Artifact, Availability, Target, register_target

NOT_INSTALLED = "tensorrt is not installed: pip install edgeth[tensorrt] on a machine with an NVIDIA GPU"
NO_GPU = "no NVIDIA GPU"


@register_target("tensorrt")
class TensorRTTarget(Target):
    file_suffix = ".onnx"
    artifact_layout = ".onnx+recipe"  # the engine is built on the device
    backend = "tensorrt"
    export_needs = (("torch", "onnx", "onnxscript"), "pip install onnx onnxscript")
    run_elsewhere = "build and run the engine on the Jetson/GPU machine (see build_engine.sh)"

    def runtime_available(self) -> Availability:
        if importlib.util.find_spec("tensorrt") is None:
            return Availability(False, NOT_INSTALLED)
        try:
            import tensorrt  # noqa: F401
        except Exception as e:  # installed but broken (driver/CUDA mismatch)
            return Availability(False, f"tensorrt does not import: {e}")
        import torch

        if not torch.cuda.is_available():
            return Availability(False, NO_GPU)
        return Availability(True, "")

    def attach_golden(self, artifact_dir: Path, artifact: Artifact, inputs: list, outputs: list) -> list[str]:
        """Golden vectors as Polygraphy data files + the recipe's `polygraphy run` line (polygraphy_data.py)."""
        from edgeth.targets.tensorrt.polygraphy_data import attach_golden

        return attach_golden(Path(artifact_dir), artifact, inputs, outputs)
