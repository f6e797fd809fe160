"""ONNX target: <program>.onnx (opset 18, single file) run with ONNX Runtime on CPU. See README.md."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeth.targets import Artifact, Availability, PreflightIssue, Target, register_target
from edgeth.targets.common import package_availability


@register_target("onnx")
class OnnxTarget(Target):
    file_suffix = ".onnx"

    def available(self) -> Availability:
        return package_availability(("torch", "onnx", "onnxscript"), "pip install onnx onnxscript")

    def runtime_available(self) -> Availability:
        return package_availability(("onnxruntime",), "pip install onnxruntime")

    def preflight(self, program) -> list[PreflightIssue]:
        from edgeth.targets.onnx.exporter import preflight

        return preflight(program)

    def export(self, program, plan: Any, out_dir: Path) -> Artifact:
        from edgeth.targets.onnx.exporter import export

        return export(self, program, plan, Path(out_dir))

    def runner(self, artifact_dir: Path, entry: dict[str, Any], threads: int | None = None):
        from edgeth.targets.onnx.runner import make_runner

        return make_runner(Path(artifact_dir), entry, threads)
