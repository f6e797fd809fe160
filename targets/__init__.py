"""Export targets (installed as edgeth.targets): executorch, onnx, coreml, tensorrt.

Each target package has the same skeleton: exporter.py, quantizer.py, runner.py,
README.md (its artifact layout). Heavy imports happen inside functions only.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgeth.registry import Registry

TARGETS: Registry["Target"] = Registry("target")

_BUILTIN = (
    "edgeth.targets.executorch",
    "edgeth.targets.onnx",
    "edgeth.targets.coreml",
    "edgeth.targets.tensorrt",
)


def register_target(name: str):
    def deco(cls):
        inst = cls()
        inst.name = name
        TARGETS.add(name, inst)
        return cls

    return deco


def _load_builtins() -> None:
    for mod in _BUILTIN:
        importlib.import_module(mod)


def get_target(name: str) -> "Target":
    _load_builtins()
    return TARGETS.get(name)


def target_names() -> list[str]:
    _load_builtins()
    return TARGETS.names()


@dataclass
class Availability:
    ok: bool
    reason: str = ""  # why not, and what to do ("pip install coremltools", "needs macOS")


@dataclass
class PreflightIssue:
    severity: str  # "error" (cannot lower) | "warning" (slow fallback, precision risk)
    module_path: str  # dotted path of the nn.Module, or graph node
    construct: str  # e.g. "grid_sample 5-D input"
    advice: str


@dataclass
class Artifact:
    """What an export wrote: files relative to the bundle's target folder, plus a report."""

    target: str
    program: str
    files: list[str]  # relative paths; the first is the one the runner loads
    precision: str = "fp32"
    report: dict[str, Any] = field(default_factory=dict)  # delegated/fallback ops, sizes, ...


# A runner takes numpy arrays (in the program's input order) and returns numpy arrays
# (in its output order), so parity code never cares which runtime ran.
Runner = Callable[..., list]


class Target:
    name: str = ""
    file_suffix: str = ""

    def available(self) -> Availability:
        """Can this target export here? (packages present)"""
        raise NotImplementedError

    def runtime_available(self) -> Availability:
        """Can this target *run* its artifacts here? (e.g. Core ML needs macOS)"""
        return self.available()

    def preflight(self, program: "Program") -> list[PreflightIssue]:  # noqa: F821
        return []

    def export(self, program: "Program", plan: Any, out_dir: Path) -> Artifact:  # noqa: F821
        """Write the artifact(s) for `program` into out_dir; `plan` is a quantize plan or None (fp32)."""
        raise NotImplementedError

    def runner(self, artifact_dir: Path, entry: dict[str, Any], threads: int | None = None) -> Runner:
        """Load an exported program; entry is the manifest's program record."""
        raise NotImplementedError
