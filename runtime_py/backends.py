"""Backends: who runs a bundle's programs. Never a silent fallback.

  torch        eager PyTorch FP32 reference, rebuilt from BUNDLE/reference via the model family
  onnxruntime  the bundle's `onnx` artifacts
  executorch   the bundle's `executorch` artifacts (.pte, XNNPACK)
  coreml       the bundle's `coreml` artifacts (.mlpackage; runs on macOS only)
  coreml-sim   the same .mlpackage in edgeth's numpy interpreter of the ML Program: a
               SIMULATION of Core ML semantics on any OS, never presented as Core ML
  tensorrt     the bundle's `tensorrt` artifacts (engine built on the device)

`program_call(bundle, backend)` returns a ProgramCall (numpy in, numpy out) that checks
every input against the manifest's shapes before dispatching to the runtime. Asking for a
backend that cannot run here, or one the bundle has no artifacts for, is an EdgethError
listing the backends that are available.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from edgeth.errors import InputError, TargetUnavailable
from edgeth.targets.common import check_inputs as _check_inputs
from edgeth.targets.common import describe_shape, shape_matches as shape_ok  # noqa: F401 (re-exported)

# backend name -> bundle target whose artifacts it runs (None: the PyTorch reference)
BACKENDS: dict[str, str | None] = {
    "torch": None,
    "onnxruntime": "onnx",
    "executorch": "executorch",
    "coreml": "coreml",
    "coreml-sim": "coreml",
    "tensorrt": "tensorrt",
}
# backends that run a target's artifacts in a simulator instead of the target's runtime:
# backend -> module with make_runner(artifact_dir, entry, threads) and LABEL
SIMULATORS: dict[str, str] = {"coreml-sim": "edgeth.targets.coreml.sim"}
TARGET_BACKEND = {t: b for b, t in BACKENDS.items() if t and b not in SIMULATORS}


def simulator_for(target: str) -> str | None:
    """The simulator backend that runs `target`'s artifacts (coreml-sim for coreml), or None."""
    return next((b for b in SIMULATORS if BACKENDS[b] == target), None)


def simulator_runner(backend: str, artifact_dir, entry: dict[str, Any], threads: int | None = None):
    """The ArrayRunner of simulator `backend` for one artifact (its module's make_runner)."""
    import importlib

    return importlib.import_module(SIMULATORS[backend]).make_runner(artifact_dir, entry, threads)


def backend_label(backend: str) -> str:
    """How a backend is named to people: simulators say that they are one."""
    if backend in SIMULATORS:
        import importlib

        return importlib.import_module(SIMULATORS[backend]).LABEL
    return backend


def backend_for_target(target: str) -> str:
    return TARGET_BACKEND.get(target, target)


def target_for_backend(backend: str) -> str | None:
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}", f"choose one of: {', '.join(BACKENDS)}")
    return BACKENDS[backend]


def available_backends(bundle) -> dict[str, Any]:
    """{backend: Availability(ok, reason)} for this bundle on this machine."""
    from edgeth.targets import Availability, get_target

    out: dict[str, Any] = {}
    for name, target in BACKENDS.items():
        if target is None:
            out[name] = _torch_availability(bundle)
            continue
        if target not in bundle.targets:
            have = ", ".join(bundle.targets) or "none"
            out[name] = Availability(False, f"bundle has no {target} artifacts (exported targets: {have})")
            continue
        try:
            tgt = get_target(target)
            out[name] = tgt.available() if name in SIMULATORS else tgt.runtime_available()
        except Exception as e:  # a target package that cannot even load
            out[name] = Availability(False, f"{target} runtime failed to load: {e}")
    return out


def _torch_availability(bundle):
    from edgeth.targets import Availability

    if not bundle.manifest["model"]["reference"]:
        return Availability(False, "bundle holds no reference checkpoint")
    try:
        from edgeth.models import get_model

        get_model(bundle.family)
    except Exception as e:
        return Availability(False, f"model family {bundle.family!r} is not registered here ({e})")
    return Availability(True, "")


def require_backend(bundle, backend: str) -> str | None:
    """The target for `backend`, or an error naming the available backends and why not."""
    target = target_for_backend(backend)
    avail = available_backends(bundle)
    if not avail[backend].ok:
        ok = [n for n, a in avail.items() if a.ok]
        raise TargetUnavailable(f"backend {backend!r} cannot run this bundle here: {avail[backend].reason}",
                                f"available backends: {', '.join(ok) or '(none)'}")
    return target


def check_inputs(program: str, specs: list, arrays: list) -> list[np.ndarray]:
    """Inputs as contiguous arrays of the spec's dtype (cast within a kind); InputError otherwise."""
    return _check_inputs(program, specs, arrays, cast=True)



class BackendCall:
    """A ProgramCall over one backend: loads each program's runner on first use."""

    def __init__(self, bundle, backend: str, threads: int | None = None):
        self.bundle = bundle
        self.backend = backend
        self.threads = threads
        self.target = require_backend(bundle, backend)
        self._runners: dict[str, Callable[..., list]] = {}
        self._specs = {n: bundle.specs(n) for n in bundle.program_names}
        self.calls: dict[str, int] = {}

    def runner(self, program: str) -> Callable[..., list]:
        if program not in self._runners:
            if program not in self._specs:
                self.bundle.program(program)  # raises, listing the programs
            if self.target is None:
                self._load_torch()
            elif self.backend in SIMULATORS:
                self._runners[program] = simulator_runner(
                    self.backend, self.bundle.artifact_dir(self.target), self.bundle.entry(program, self.target),
                    self.threads)
            else:
                from edgeth.targets import get_target

                self._runners[program] = get_target(self.target).runner(
                    self.bundle.artifact_dir(self.target), self.bundle.entry(program, self.target), self.threads)
        return self._runners[program]

    def _load_torch(self) -> None:
        import torch

        from edgeth.bundle.reference import load_reference_programs
        from edgeth.runtime_py.torch_backend import torch_call

        if self.threads:
            torch.set_num_threads(self.threads)
        # rebuilt once per loaded bundle: every torch BackendCall on it shares the modules
        programs = self.bundle.cache.get("torch_programs")
        if programs is None:
            programs = self.bundle.cache["torch_programs"] = load_reference_programs(self.bundle)
        call = torch_call(list(programs.values()))
        for name in programs:
            self._runners[name] = (lambda n: lambda *xs: call(n, list(xs)))(name)

    def __call__(self, program: str, inputs: list) -> list[np.ndarray]:
        run = self.runner(program)
        in_specs, out_specs = self._specs[program]
        outs = run(*check_inputs(program, in_specs, inputs))
        outs = [np.asarray(o) for o in (outs if isinstance(outs, (list, tuple)) else [outs])]
        if len(outs) != len(out_specs):
            raise InputError(f"backend {self.backend} returned {len(outs)} outputs for {program!r}, manifest lists {len(out_specs)}",
                             "the artifact does not match its manifest; re-export the bundle")
        self.calls[program] = self.calls.get(program, 0) + 1
        return outs


def program_call(bundle, backend: str, threads: int | None = None) -> BackendCall:
    """A ProgramCall running `bundle`'s programs on `backend` (see module docstring)."""
    return BackendCall(bundle, backend, threads)
