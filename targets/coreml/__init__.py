"""Core ML target: <program>.mlpackage (ML program, iOS16+, FP32 I/O). Exports on any OS; runs on macOS.
See README.md for the artifact layout and how an iOS app loads it.
"""
from __future__ import annotations

import platform

from edgeth.targets import Availability, Target, register_target

NOT_MACOS = "Core ML predict() runs only on macOS; the .mlpackage is still exported"


@register_target("coreml")
class CoreMLTarget(Target):
    file_suffix = ".mlpackage"
    backend = "coreml"
    export_needs = (("torch", "coremltools"), "pip install coremltools")
    run_elsewhere = "run this bundle on a Mac, or pick --backend executorch / onnxruntime"

    def runtime_available(self) -> Availability:
        if platform.system() != "Darwin":
            return Availability(False, NOT_MACOS)
        return self.available()
