"""Helpers shared by every export target: availability probes, quiet conversion, input checks.

Nothing here imports torch or a converter at module level; `import edgeth.targets.common`
stays cheap. Targets import what they need inside functions.

  package_availability(...)   Availability from importlib.util.find_spec (no imports)
  quiet_python()              silence converter prints, progress bars, warnings and chatty loggers
  native_stderr()             capture C/C++ writes to fd 2 (ExecuTorch's cpuinfo/threadpool lines)
  check_inputs(entry, arrays) numpy inputs vs the manifest entry (InputError names the input)
  ArrayRunner                 the callable every runner returns: run(a, b) or run([a, b])
  artifact_file(...)          the file a runner loads (BundleError if missing)
  convert_failure(...)        a converter exception -> one-line UnsupportedOp
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from edgeth.errors import BundleError, InputError, UnsupportedOp
from edgeth.program import TensorSpec
from edgeth.targets import Availability

log = logging.getLogger("edgeth.targets")

# Loggers that narrate conversions at INFO/WARNING level.
CHATTY_LOGGERS = (
    "torch.onnx", "torch.export", "torch._export", "torch._dynamo", "torch.fx.experimental.symbolic_shapes",
    "torch.utils._pytree", "coremltools", "torchao", "executorch", "onnxscript", "nncf",
)

# Native lines that carry no information for a user (ExecuTorch runtime start-up, torchao import).
NATIVE_NOISE = re.compile(
    r"^\[(cpuinfo_utils|threadpool|cpuinfo)\.cpp:\d+\]|^Failed to load .*torchao|KernelPreference|register_constant"
)


def module_installed(dotted: str) -> bool:
    """Is `dotted` importable? Looks at files only: no package __init__ runs (find_spec on a
    submodule would import its parents)."""
    top, *rest = dotted.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    dirs = [Path(d) for d in (spec.submodule_search_locations or [])]
    for i, part in enumerate(rest):
        last = i == len(rest) - 1
        nxt = [d / part for d in dirs if (d / part).is_dir()]
        if last and (nxt or any(f.name.split(".")[0] == part and f.suffix in (".py", ".so", ".pyd")
                                for d in dirs for f in d.glob(part + ".*"))):
            return True
        if not nxt:
            return False
        dirs = nxt
    return True


def package_availability(modules: Sequence[str], pip: str) -> Availability:
    """Availability(True) when every module is installed, else the first missing one + pip command."""
    for mod in modules:
        if not module_installed(mod):
            return Availability(False, f"{mod} is not installed: {pip}")
    return Availability(True, "")


@contextlib.contextmanager
def quiet_python() -> Iterator[io.StringIO]:
    """Silence converter chatter (prints, progress bars, warnings, INFO/WARNING logs) in the block.

    Yields the buffer that received stdout/stderr prints, so a caller can quote it on failure.
    """
    import warnings

    saved = {n: logging.getLogger(n).level for n in CHATTY_LOGGERS}
    for n in CHATTY_LOGGERS:
        logging.getLogger(n).setLevel(logging.ERROR)
    buf = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            warnings.simplefilter("ignore")
            yield buf
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)


@contextlib.contextmanager
def native_stderr() -> Iterator[list[str]]:
    """Redirect fd 2 to a temp file for the block (C++ runtimes write there directly).

    Yields a list that, after the block, holds the captured lines minus known noise; those
    lines are also logged at DEBUG on the `edgeth.targets` logger. Python-level warnings
    in the block are captured too, so keep the block short (load + first run).
    """
    try:
        sys.stderr.flush()
    except Exception:  # a closed/replaced stream must not break loading
        pass
    saved = os.dup(2)
    lines: list[str] = []
    py = io.StringIO()  # some runtimes log through Python's sys.stderr (replaced under pytest)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            with contextlib.redirect_stderr(py):
                yield lines
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", errors="replace") + "\n" + py.getvalue()
            lines.extend(ln for ln in text.splitlines() if ln.strip() and not NATIVE_NOISE.search(ln.strip()))
            for ln in lines:
                log.debug("native: %s", ln)


def entry_specs(entry: dict[str, Any]) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """(input specs, output specs) of a manifest entry; BundleError if the record is malformed."""
    try:
        return ([TensorSpec.from_json(s) for s in entry["inputs"]], [TensorSpec.from_json(s) for s in entry["outputs"]])
    except (KeyError, TypeError, ValueError) as e:
        name = entry.get("name", "?") if isinstance(entry, dict) else "?"
        raise BundleError(f"manifest entry for program {name!r} is malformed ({e})", "re-export the bundle") from None


def describe_shape(spec: TensorSpec) -> str:
    dims = [f"{spec.dynamic[i][0]}∈[{spec.dynamic[i][1]},{spec.dynamic[i][2]}]" if i in spec.dynamic else str(d)
            for i, d in enumerate(spec.shape)]
    return "(" + ", ".join(dims) + ")"


def shape_matches(spec: TensorSpec, shape: Sequence[int]) -> bool:
    if len(shape) != len(spec.shape):
        return False
    for i, (want, got) in enumerate(zip(spec.shape, shape)):
        if i in spec.dynamic:
            _, lo, hi = spec.dynamic[i]
            if not lo <= got <= hi:
                return False
        elif want != got:
            return False
    return True


def check_inputs(program: str, specs: Sequence[TensorSpec], arrays: Sequence[Any], cast: bool = False) -> list:
    """Inputs as C-contiguous numpy arrays; wrong count, shape or dtype is an InputError.

    Dtypes must match the manifest exactly (a float64 image is a caller bug, not something
    to round silently); the message names the input, the expected and the given value.
    cast=True (host pipeline code, golden replays) converts within a kind (float64 -> float32,
    int64 -> int32) and still refuses float <-> int.
    """
    import numpy as np

    if len(arrays) != len(specs):
        raise InputError(f"program {program!r} takes {len(specs)} inputs ({', '.join(s.name for s in specs)}), "
                         f"got {len(arrays)}", "pass the inputs in the manifest's order")
    out = []
    for spec, a in zip(specs, arrays):
        if hasattr(a, "detach"):  # a torch tensor slipped through
            a = a.detach().cpu().numpy()
        a = np.asarray(a)
        if not shape_matches(spec, a.shape):
            raise InputError(f"program {program!r} input {spec.name!r}: expected shape {describe_shape(spec)}, "
                             f"given {tuple(a.shape)}", "reshape or resize the input to the manifest's shape")
        want = np.dtype(spec.dtype)
        if cast and a.dtype != want and (a.dtype.kind == want.kind or {a.dtype.kind, want.kind} <= set("iu")):
            a = a.astype(want)
        if a.dtype != want:
            raise InputError(f"program {program!r} input {spec.name!r}: expected dtype {spec.dtype}, given {a.dtype}",
                             f"convert it first, e.g. array.astype(np.{spec.dtype})")
        out.append(np.ascontiguousarray(a))
    return out


class ArrayRunner:
    """numpy in, numpy out, inputs checked against the manifest entry before the runtime sees them."""

    def __init__(self, entry: dict[str, Any], fn: Callable[[list], Sequence[Any]], backend: str):
        self.name = str(entry.get("name", "?"))
        self.inputs, self.outputs = entry_specs(entry)
        self.backend = backend
        self._fn = fn

    def __call__(self, *arrays: Any) -> list:
        import numpy as np

        if len(arrays) == 1 and isinstance(arrays[0], (list, tuple)):
            arrays = tuple(arrays[0])
        outs = list(self._fn(check_inputs(self.name, self.inputs, arrays)))
        if len(outs) != len(self.outputs):
            raise BundleError(f"{self.backend} returned {len(outs)} outputs for program {self.name!r}, "
                              f"the manifest lists {len(self.outputs)}", "the artifact does not match its manifest; re-export")
        return [np.asarray(o) for o in outs]


def artifact_file(artifact_dir: Path | str, entry: dict[str, Any], suffix: str) -> Path:
    """entry["files"][0] under artifact_dir; BundleError if the record or the file is missing."""
    files = entry.get("files") or []
    if not files:
        raise BundleError(f"manifest entry for program {entry.get('name', '?')!r} lists no files", "re-export the bundle")
    path = Path(artifact_dir) / files[0]
    if not path.name.endswith(suffix):
        raise BundleError(f"{path.name} is not a {suffix} artifact", "this entry belongs to another target")
    if not path.exists():
        raise BundleError(f"artifact {path} is missing", "re-export the bundle or copy the whole bundle folder")
    return path


def first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip() or type(exc).__name__
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), text)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def convert_failure(target: str, program: str, exc: BaseException, stage: str) -> UnsupportedOp:
    """A converter's exception as one clean line (the preflight missed something)."""
    return UnsupportedOp(f"{target} {stage} failed for program {program!r}: {type(exc).__name__}: {first_line(exc)}",
                         "run `edgeth export --preflight` for module paths, or EDGETH_DEBUG=1 for the traceback")


def runner_entry(program: Any, artifact: Any) -> dict[str, Any]:
    """The manifest-style entry a target's `runner` takes, for an artifact just exported from `program`."""
    return {"name": program.name, "files": list(artifact.files), "inputs": [s.to_json() for s in program.inputs],
            "outputs": [s.to_json() for s in program.outputs], "precision": artifact.precision}


def path_size(path: Path) -> int:
    """Bytes of a file, or of every file under a directory (.mlpackage)."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def precision_of(plan: Any) -> str:
    return "fp32" if plan is None else str(getattr(plan, "precision", "fp32"))


def plan_key(plan: Any) -> str:
    """What an export depends on in a PrecisionPlan: its settings and its calibration data."""
    import hashlib
    import json

    import numpy as np

    if plan is None:
        return "fp32"
    h = hashlib.sha256(json.dumps(plan.to_json(), sort_keys=True, default=str).encode())  # notes reach the report
    for call in plan.calibration:
        for x in call:
            a = np.ascontiguousarray(np.asarray(x))
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()[:20]


def torch_dynamic_shapes(specs: Sequence[TensorSpec]):
    """torch.export dynamic_shapes (a tuple in input order) from TensorSpec.dynamic, or None if static."""
    if not any(s.dynamic for s in specs):
        return None
    import torch

    dims: dict[str, Any] = {}
    out = []
    for s in specs:
        spec_dims = {}
        for i, (sym, lo, hi) in s.dynamic.items():
            if sym not in dims:
                dims[sym] = torch.export.Dim(sym, min=lo, max=hi)
            spec_dims[i] = dims[sym]
        out.append(spec_dims or None)
    return tuple(out)
