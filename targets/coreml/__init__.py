"""Core ML target: <program>.mlpackage (ML program, iOS16+, FP32 I/O). Exports on any OS; runs on macOS.

See README.md for the artifact layout and how an iOS app loads it.
"""
from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from edgeth.errors import TargetUnavailable
from edgeth.targets import Artifact, Availability, PreflightIssue, Target, register_target
from edgeth.targets.common import package_availability

NOT_MACOS = "Core ML predict() runs only on macOS; the .mlpackage is still exported"


@register_target("coreml")
class CoreMLTarget(Target):
    file_suffix = ".mlpackage"

    def available(self) -> Availability:
        return package_availability(("torch", "coremltools"), "pip install coremltools")

    def runtime_available(self) -> Availability:
        if platform.system() != "Darwin":
            return Availability(False, NOT_MACOS)
        return self.available()

    def preflight(self, program) -> list[PreflightIssue]:
        from edgeth.targets.coreml.exporter import preflight

        return preflight(program)

    def export(self, program, plan: Any, out_dir: Path) -> Artifact:
        from edgeth.targets.coreml.exporter import export

        return export(self, program, plan, Path(out_dir))

    def runner(self, artifact_dir: Path, entry: dict[str, Any], threads: int | None = None):
        avail = self.runtime_available()
        if not avail.ok:
            raise TargetUnavailable(f"cannot run Core ML here: {avail.reason}",
                                    "run this bundle on a Mac, or pick --backend executorch / onnxruntime")
        from edgeth.targets.coreml.runner import make_runner

        return make_runner(Path(artifact_dir), entry, threads)
