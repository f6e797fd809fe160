"""ExecuTorch target: <program>.pte lowered to XNNPACK (+ <program>.bpte with golden vectors).

Export works wherever executorch is installed; the runtime (executorch.runtime pybindings)
runs the same .pte on Linux/macOS hosts, as the phone app does. See README.md.
"""
from __future__ import annotations

from pathlib import Path

from edgeth.targets import Artifact, Target, register_target

PIP = "pip install executorch"


@register_target("executorch")
class ExecuTorchTarget(Target):
    file_suffix = ".pte"
    backend = "executorch"
    export_needs = (("executorch", "executorch.exir", "torch"), PIP)
    runtime_needs = (("executorch.runtime", "executorch.extension.pybindings.portable_lib"), PIP)

    def attach_golden(self, artifact_dir: Path, artifact: Artifact, inputs: list, outputs: list) -> list[str]:
        from edgeth.targets.executorch.bundled import attach_golden

        return attach_golden(Path(artifact_dir), artifact, inputs, outputs)


def verify_bundled(bpte_path, rtol: float = 1e-5, atol: float = 1e-4) -> list[bool]:
    """Run every test case of a .bpte on the ExecuTorch runtime; one bool per case."""
    from edgeth.targets.executorch.bundled import verify_bundled as _verify

    return _verify(bpte_path, rtol, atol)
