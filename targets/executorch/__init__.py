"""ExecuTorch target: <program>.pte lowered to XNNPACK (+ <program>.bpte with golden vectors).

Export works wherever executorch is installed; the runtime (executorch.runtime pybindings)
runs the same .pte on Linux/macOS hosts, as the phone app does. See README.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeth.targets import Artifact, Availability, PreflightIssue, Target, register_target
from edgeth.targets.common import package_availability

PIP = "pip install executorch"


@register_target("executorch")
class ExecuTorchTarget(Target):
    file_suffix = ".pte"

    def available(self) -> Availability:
        return package_availability(("executorch", "executorch.exir", "torch"), PIP)

    def runtime_available(self) -> Availability:
        return package_availability(("executorch.runtime", "executorch.extension.pybindings.portable_lib"), PIP)

    def preflight(self, program) -> list[PreflightIssue]:
        from edgeth.targets.executorch.exporter import preflight

        return preflight(program)

    def export(self, program, plan: Any, out_dir: Path) -> Artifact:
        from edgeth.targets.executorch.exporter import export

        return export(self, program, plan, out_dir)

    def runner(self, artifact_dir: Path, entry: dict[str, Any], threads: int | None = None):
        from edgeth.targets.executorch.runner import make_runner

        return make_runner(Path(artifact_dir), entry, threads)

    def attach_golden(self, artifact_dir: Path, artifact: Artifact, inputs: list, outputs: list) -> list[str]:
        from edgeth.targets.executorch.bundled import attach_golden

        return attach_golden(Path(artifact_dir), artifact, inputs, outputs)


def verify_bundled(bpte_path, rtol: float = 1e-5, atol: float = 1e-4) -> list[bool]:
    """Run every test case of a .bpte on the ExecuTorch runtime; one bool per case."""
    from edgeth.targets.executorch.bundled import verify_bundled as _verify

    return _verify(bpte_path, rtol, atol)
