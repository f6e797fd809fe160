"""coreml-sim interpreter: the ML Program of an .mlpackage, read back with coremltools' MIL proto
reader (no Core ML runtime) and evaluated op by op in numpy.

Follows the ML Program format of coremltools 9.0 (Model.proto `mlProgram`, MIL.proto) as read
by `coremltools.converters.mil.frontend.milproto.load.load(spec, specification_version,
file_weights_dir=<pkg>/Data/com.apple.CoreML/weights)`, which returns a pymil Program whose
`const` ops carry their values (weights come from the package's weight.bin).

  SimProgram(path, name)   load + compile: refuses an op type the table lacks (UnsupportedOp
                           naming the op and the program), evaluates const/constexpr_* ops once
  .run({input: array})     every non-const op in program order; outputs in function order
  .io()                    declared inputs/outputs (name, shape, numpy dtype) from the spec
  .ops_outside_target()    op types the function's opset (deployment target) does not define

Precision (see sim/__init__.py): every op computes in float32 with its inputs widened
(float16 -> float32) and stores each output in its declared MIL dtype, so an fp16 op's result
is rounded to fp16 (and overflows to inf) exactly where the program stores an fp16 tensor.

Shape legend: none (tensors keep the shapes the program declares).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeth.errors import BundleError, UnsupportedOp
from edgeth.targets.common import first_line, quiet_python

WEIGHTS_DIR = "Data/com.apple.CoreML/weights"
CONST_OPS = ("const",)


class Ref(str):
    """A parameter that names a variable computed at run time (not a constant)."""


@dataclass
class Step:
    op_type: str
    name: str
    params: dict[str, Any]  # value | Ref | list of those (variadic inputs such as concat's values)
    outputs: list[tuple[str, Any]]  # (variable name, numpy dtype it is stored in)


def _np_dtype(var) -> Any:
    from coremltools.converters.mil.mil import types

    try:
        return np.dtype(types.nptype_from_builtin(var.dtype))
    except Exception:
        return None  # strings, lists: not tensors


def load_package(path: Path):
    """(spec, pymil Program) of an .mlpackage; BundleError if it does not read back."""
    path = Path(path)
    try:
        with quiet_python():
            import coremltools as ct
            from coremltools.converters.mil.frontend.milproto.load import load

            spec = ct.utils.load_spec(str(path))
            prog = load(spec, specification_version=spec.specificationVersion,
                        file_weights_dir=str(path / WEIGHTS_DIR))
    except Exception as e:
        raise BundleError(f"coreml-sim cannot read the ML Program in {path.name}: {first_line(e)}",
                          "the .mlpackage is corrupt or not an ML Program; re-export the bundle") from None
    return spec, prog


class SimProgram:
    """One ML Program function ('main'), compiled to a list of numpy steps."""

    def __init__(self, path: Path, name: str | None = None, compile: bool = True):
        self.path = Path(path)
        self.name = name or self.path.stem
        self.spec, prog = load_package(self.path)
        self.fn = prog.functions.get("main") or next(iter(prog.functions.values()))
        self.inputs = {n: _np_dtype(v) for n, v in self.fn.inputs.items()}
        self.outputs = [v.name for v in self.fn.outputs]
        self.consts: dict[str, Any] = {}
        self.steps: list[Step] = []
        if compile:  # compile=False: read the program only (structural checks of any op set)
            self._compile()

    def _unsupported(self, op_type: str, op_name: str, why: str = "") -> UnsupportedOp:
        return UnsupportedOp(f"coreml-sim does not implement MIL op {op_type!r}{why} (op {op_name!r} in program "
                             f"{self.name!r})", "add it to edgeth/targets/coreml/sim (one table entry, see "
                             "targets/coreml/README.md) or run this program with --backend coreml on a Mac")

    def _param(self, v) -> Any:
        if isinstance(v, (list, tuple)):
            return [self._param(x) for x in v]
        if v.name in self.consts:
            return self.consts[v.name]
        if v.op is not None and v.op.op_type in CONST_OPS:
            return self._const_value(v)
        return Ref(v.name)

    def _const_value(self, v) -> Any:
        val = v.val
        dt = _np_dtype(v)
        if isinstance(val, np.ndarray) or (dt is not None and not isinstance(val, (str, bytes))):
            val = np.asarray(val, dtype=dt) if dt is not None else np.asarray(val)
        self.consts[v.name] = val
        return val

    def _compile(self) -> None:
        from edgeth.targets.coreml.sim.ops import OPS

        missing = [op for op in self.fn.operations if op.op_type not in CONST_OPS and op.op_type not in OPS]
        if missing:
            raise self._unsupported(missing[0].op_type, missing[0].name)
        for op in self.fn.operations:
            if op.op_type in CONST_OPS:
                for out in op.outputs:
                    self._const_value(out)
                continue
            step = Step(op.op_type, op.name, {k: self._param(v) for k, v in op.inputs.items()},
                        [(o.name, _np_dtype(o)) for o in op.outputs])
            if op.op_type.startswith("constexpr_"):  # weight decompression: done once, at load (as Core ML does)
                for (name, _), val in zip(step.outputs, self._eval(step, self.consts)):
                    self.consts[name] = val
                continue
            self.steps.append(step)

    def _eval(self, step: Step, env: dict[str, Any]) -> list[np.ndarray]:
        from edgeth.targets.coreml.sim.ops import OPS, SimUnsupported

        def get(v):
            if isinstance(v, Ref):
                v = env[v]
            elif isinstance(v, list):
                return [get(x) for x in v]
            if isinstance(v, np.ndarray) and v.dtype == np.float16:
                return v.astype(np.float32)  # compute in float32; the output is stored in its MIL dtype
            return v

        params = {k: get(v) for k, v in step.params.items()}
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                out = OPS[step.op_type](params)
                outs = list(out) if isinstance(out, tuple) else [out]
                return [np.asarray(o).astype(dt, copy=False) if dt is not None else o
                        for o, (_, dt) in zip(outs, step.outputs)]
        except SimUnsupported as e:
            raise self._unsupported(step.op_type, step.name, f" with {e}") from None
        except Exception as e:
            raise BundleError(f"coreml-sim failed at op {step.name!r} ({step.op_type}) of program {self.name!r}: "
                              f"{type(e).__name__}: {first_line(e)}", "the .mlpackage does not match its manifest "
                              "entry, or this is a coreml-sim bug (EDGETH_DEBUG=1 for the traceback)") from None

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        env: dict[str, Any] = dict(self.consts)
        for name, dt in self.inputs.items():
            if name not in feeds:
                raise BundleError(f"program {self.name!r} declares input {name!r}, which was not given",
                                  "the .mlpackage does not match its manifest entry; re-export the bundle")
            env[name] = np.asarray(feeds[name]).astype(dt, copy=False) if dt is not None else feeds[name]
        for step in self.steps:
            for (name, _), val in zip(step.outputs, self._eval(step, env)):
                env[name] = val
        return [env[n] for n in self.outputs]

    def io(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Declared (inputs, outputs) of the spec: [{name, shape, dtype}] (numpy dtype names)."""
        from coremltools.proto import FeatureTypes_pb2

        names = {v: k for k, v in FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.items()}
        to_np = {"FLOAT32": "float32", "FLOAT16": "float16", "DOUBLE": "float64", "INT32": "int32", "INT8": "int8"}

        def rows(features):
            return [{"name": f.name, "shape": [int(d) for d in f.type.multiArrayType.shape],
                     "dtype": to_np.get(names.get(f.type.multiArrayType.dataType, "?"), "?")} for f in features]

        return rows(self.spec.description.input), rows(self.spec.description.output)

    def opset(self) -> str:
        return str(self.fn.opset_version.name) if self.fn.opset_version is not None else "?"

    def ops_outside_target(self) -> list[str]:
        """MIL op types this function uses that its opset (deployment target) does not define."""
        from coremltools.converters.mil.mil.ops.registry import SSAOpRegistry

        target = self.fn.opset_version
        out = []
        for t in sorted({op.op_type for op in self.fn.operations}):
            versions = SSAOpRegistry.core_ops.get(t, {})
            if target is None or not any(v <= target for v in versions):
                out.append(t)
        return out

    def op_counts(self) -> dict[str, int]:
        from collections import Counter

        return dict(sorted(Counter(op.op_type for op in self.fn.operations).items()))
