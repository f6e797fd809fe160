"""Export targets (installed as edgeth.targets): executorch, onnx, coreml, tensorrt.

Each target package has the same skeleton: exporter.py, quantizer.py, runner.py,
README.md (its artifact layout). Heavy imports happen inside functions only, so
`import edgeth.targets` and `get_target(name)` never load a converter or runtime.

Lifecycle of one program on one target:
  target.preflight(program) -> [PreflightIssue]   graph walk (targets/preflight.py)
  target.export(program, plan, out_dir) -> Artifact
        raises UnsupportedOp (one line naming the module path) on any "error" issue;
        a non-fp32 PrecisionPlan is routed through the target's quantizer.py
  target.attach_golden(out_dir, artifact, inputs, outputs) -> [extra relative files]
        optional: targets that can carry golden vectors inside an artifact (ExecuTorch
        BundledProgram .bpte) write them here; the default writes nothing
  target.runner(artifact_dir, entry, threads) -> Runner

The manifest entry a runner gets (`entry`) must hold at least:
  name       program name
  files      [paths relative to artifact_dir]; files[0] is what the runner loads
             (.pte / .onnx / .mlpackage / the TensorRT .onnx whose engine sits next to it)
  inputs     [TensorSpec.to_json()] in call order: name, shape, dtype, dynamic
  outputs    [TensorSpec.to_json()] in output order
  precision  "fp32" | "fp16" | "int8" | ... (informational for runners)
Extra keys (report, tolerances, target, ...) are ignored.

A Runner is called with numpy arrays in the program's input order, either as
`run(a, b)` or `run([a, b])`, and returns a list of numpy arrays in output order. It
checks every input against `entry["inputs"]` first (InputError naming the input, the
expected and the given shape) and turns a corrupt artifact into a BundleError.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgeth.registry import Registry

TARGETS: Registry["Target"] = Registry("target", builtins=(
    "edgeth.targets.executorch",
    "edgeth.targets.onnx",
    "edgeth.targets.coreml",
    "edgeth.targets.tensorrt",
))


def register_target(name: str):
    def deco(cls):
        inst = cls()
        inst.name = name
        inst.package = inst.package or cls.__module__
        TARGETS.add(name, inst)
        return cls

    return deco


def get_target(name: str) -> "Target":
    return TARGETS.get(name)


def target_names() -> list[str]:
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

    def to_json(self) -> dict[str, str]:
        return {"severity": self.severity, "module_path": self.module_path, "construct": self.construct,
                "advice": self.advice}


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
    """The one facade every target shares. A target declares data (its suffix, the modules its
    exporter and runtime need, the backend name that runs its artifacts) and keeps its work in
    its package's exporter.py / quantizer.py / runner.py, imported only when called."""

    name: str = ""
    file_suffix: str = ""
    backend: str = ""  # the runtime_py backend that runs these artifacts (`edgeth verify --backend`)
    package: str = ""  # e.g. "edgeth.targets.onnx" (set by register_target from the class's module)
    export_needs: tuple[tuple[str, ...], str] = ((), "")  # (importable modules, how to install them)
    runtime_needs: tuple[tuple[str, ...], str] | None = None  # None: the same as export_needs
    run_elsewhere: str = "pick another --backend"  # what to do when the runtime is absent here

    def _impl(self, part: str):
        return importlib.import_module(f"{self.package}.{part}")

    def available(self) -> Availability:
        """Can this target export here? (packages present)"""
        from edgeth.targets.common import package_availability

        return package_availability(*self.export_needs)

    def runtime_available(self) -> Availability:
        """Can this target *run* its artifacts here? (e.g. Core ML needs macOS)"""
        if self.runtime_needs is None:
            return self.available()
        from edgeth.targets.common import package_availability

        return package_availability(*self.runtime_needs)

    def precisions(self) -> tuple[str, ...]:
        """The precisions its quantizer accepts (quantizer.SUPPORTED), in edgeth's order."""
        from edgeth.quantize.plan import PRECISIONS

        supported = getattr(self._impl("quantizer"), "SUPPORTED", ("fp32",))
        return tuple(p for p in PRECISIONS if p in supported)

    def preflight(self, program: "Program", precision: str = "fp32") -> list[PreflightIssue]:  # noqa: F821
        """Graph rules (+ a trial FP32 lowering where the target has one and `precision` is fp32; a
        quantized export reports the same findings from its own lowering instead of lowering twice)."""
        from edgeth.targets.provenance import shared_provenance

        with shared_provenance():
            return self._impl("exporter").preflight(program, precision)

    def export(self, program: "Program", plan: Any, out_dir: Path) -> Artifact:  # noqa: F821
        """Write the artifact(s) for `program` into out_dir; `plan` is a quantize plan or None (fp32).

        A quantized artifact is kept (its files' bytes, with the program's cached export) and
        written again when the same program is exported under an equal plan: the mixed search
        exports its chosen plan to check it on the runtime, and the bundle then exports that same
        plan (ExecuTorch lowering of a quantized program is the costliest step of an export)."""
        from edgeth.targets.provenance import shared_provenance

        with shared_provenance():
            return self._export(program, plan, Path(out_dir))

    def _export(self, program: "Program", plan: Any, out_dir: Path) -> Artifact:  # noqa: F821
        import copy

        from edgeth.targets.common import plan_key, precision_of
        from edgeth.targets.preflight import memo

        if precision_of(plan) == "fp32":  # fp32 lowerings are already reused from preflight
            return self._impl("exporter").export(self, program, plan, out_dir)
        fresh: list[Artifact] = []

        def build() -> tuple[Artifact, dict[str, bytes]]:
            art = self._impl("exporter").export(self, program, plan, out_dir)
            fresh.append(art)
            return copy.deepcopy(art), _read_files(out_dir, art.files)  # callers may edit what they get

        kept, files = memo(program, f"{self.name}.artifact:{plan_key(plan)}", build)
        if fresh:
            return fresh[0]
        for rel, data in files.items():
            (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (out_dir / rel).write_bytes(data)
        return copy.deepcopy(kept)

    def runner(self, artifact_dir: Path, entry: dict[str, Any], threads: int | None = None) -> Runner:
        """Load an exported program; entry is the manifest's program record."""
        from edgeth.errors import TargetUnavailable

        avail = self.runtime_available()
        if not avail.ok:
            raise TargetUnavailable(f"cannot run {self.name} here: {avail.reason}", self.run_elsewhere)
        return self._impl("runner").make_runner(Path(artifact_dir), entry, threads)

    def attach_golden(self, artifact_dir: Path, artifact: Artifact, inputs: list, outputs: list) -> list[str]:
        """Embed golden vectors into a target-native file next to the artifact.

        inputs/outputs: one list of numpy arrays per recorded call, in the program's
        input/output order. Returns the extra file names (relative to artifact_dir) it
        wrote; the default target has no such format and writes nothing.
        """
        return []

    def check_preflight(self, program: "Program", precision: str = "fp32") -> list[PreflightIssue]:  # noqa: F821
        """Run preflight; raise UnsupportedOp on the first "error" issue, else return the warnings."""
        from edgeth.errors import UnsupportedOp

        issues = self.preflight(program, precision)
        errors = [i for i in issues if i.severity == "error"]
        if errors:
            e = errors[0]
            more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
            raise UnsupportedOp(f"{self.name} cannot export program {program.name!r}: {e.construct} at "
                                f"module {e.module_path!r}{more}", e.advice)
        return issues


def _read_files(root: Path, names: list[str]) -> dict[str, bytes]:
    """{relative path: bytes} of the files (or folders, e.g. an .mlpackage) `names` under root."""
    out: dict[str, bytes] = {}
    for name in names:
        p = root / name
        for f in ([p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file())):
            out[f.relative_to(root).as_posix()] = f.read_bytes()
    return out
