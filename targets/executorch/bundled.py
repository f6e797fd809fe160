"""ExecuTorch BundledProgram: golden inputs/expected outputs inside a <program>.bpte.

An app verifies on the phone with ExecuTorch's bundled-program API (load the .bpte, run
test case i, compare within rtol/atol) without any edgeth code. The .pte written by the
exporter is reused byte for byte (BundledProgram(pte_file_path=...)), so the bundle's
program is exactly the one the manifest hashes.

  attach_golden(artifact_dir, artifact, inputs, outputs) -> ["<program>.bpte"]
  verify_bundled(bpte_path, rtol, atol) -> [bool per test case]
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from edgeth.errors import BundleError, InputError
from edgeth.io_utils import atomic_path
from edgeth.program import TensorSpec
from edgeth.targets.common import check_inputs, first_line, native_stderr, quiet_python

# executorch ScalarType codes -> numpy dtype names (the ones edge programs use)
_SCALAR = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 7: "float64",
           11: "bool"}


def _check_against(method_meta, kind: str, calls: Sequence[Sequence[Any]]) -> None:
    n = method_meta.num_inputs() if kind == "input" else method_meta.num_outputs()
    info = method_meta.input_tensor_meta if kind == "input" else method_meta.output_tensor_meta
    for c, arrays in enumerate(calls):
        if len(arrays) != n:
            raise InputError(f"golden call {c}: {len(arrays)} {kind}s, the program takes {n}",
                             f"pass one array per {kind} in the program's order")
        for i, a in enumerate(arrays):
            ti = info(i)
            sizes, dtype = tuple(ti.sizes()), _SCALAR.get(int(ti.dtype()), str(ti.dtype()))
            fits = len(sizes) == a.ndim and all(g <= s for g, s in zip(a.shape, sizes))
            if not fits or str(a.dtype) != dtype:
                raise InputError(f"golden call {c} {kind} {i}: given {tuple(a.shape)} {a.dtype}, the program has "
                                 f"{sizes} {dtype}", "capture golden vectors from the same program")


def attach_golden(artifact_dir: Path, artifact, inputs: list[list[Any]], outputs: list[list[Any]]) -> list[str]:
    import numpy as np
    import torch

    from edgeth.targets.executorch.runner import load_method

    with quiet_python():
        from executorch.devtools.bundled_program.config import MethodTestCase, MethodTestSuite
        from executorch.devtools.bundled_program.core import BundledProgram
        from executorch.devtools.bundled_program.serialize import serialize_from_bundled_program_to_flatbuffer

    if not inputs or len(inputs) != len(outputs):
        raise InputError(f"golden vectors for {artifact.program!r}: {len(inputs)} input sets, {len(outputs)} output sets",
                         "pass one list of outputs per list of inputs (at least one call)")
    pte = Path(artifact_dir) / artifact.files[0]
    inputs = [[np.ascontiguousarray(a) for a in call] for call in inputs]
    outputs = [[np.ascontiguousarray(a) for a in call] for call in outputs]
    sig = artifact.report.get("signature")
    if sig:  # the program's TensorSpecs (dynamic ranges included), recorded at export
        name = artifact.program
        for c, (ins, outs) in enumerate(zip(inputs, outputs)):
            try:
                check_inputs(name, [TensorSpec.from_json(d) for d in sig["inputs"]], ins)
                check_inputs(name, [TensorSpec.from_json(d) for d in sig["outputs"]], outs)
            except InputError as e:
                raise InputError(f"golden call {c}: {e.what}", e.fix) from None
    else:  # an Artifact rebuilt from a manifest without the signature: the .pte's own metadata
        program, _ = load_method(pte)
        meta = program.metadata("forward")
        _check_against(meta, "input", inputs)
        _check_against(meta, "output", outputs)
    cases = [MethodTestCase(inputs=[torch.from_numpy(a.copy()) for a in ins],
                            expected_outputs=[torch.from_numpy(a.copy()) for a in outs])
             for ins, outs in zip(inputs, outputs)]
    with quiet_python():
        bundled = BundledProgram(None, [MethodTestSuite("forward", cases)], pte_file_path=str(pte))
        buf = serialize_from_bundled_program_to_flatbuffer(bundled)
    dest = pte.with_suffix(".bpte")
    with atomic_path(dest) as tmp:
        tmp.write_bytes(buf)
    return [dest.name]


def count_cases(buf: bytes) -> int:
    from executorch.devtools.bundled_program.serialize import deserialize_from_flatbuffer_to_bundled_program

    bp = deserialize_from_flatbuffer_to_bundled_program(buf)
    return sum(len(s.test_cases) for s in bp.method_test_suites if s.method_name == "forward")


def verify_bundled(bpte_path: Path | str, rtol: float = 1e-5, atol: float = 1e-4) -> list[bool]:
    """Run every bundled test case with the ExecuTorch runtime; True where outputs match."""
    path = Path(bpte_path)
    if not path.is_file():
        raise BundleError(f"bundled program {path} is missing", "attach golden vectors first (edgeth export)")
    buf = path.read_bytes()
    try:
        with quiet_python():
            n = count_cases(buf)
    except Exception as e:
        raise BundleError(f"{path.name} is not a readable BundledProgram: {first_line(e)}", "re-export the bundle") from None
    results: list[bool] = []
    with native_stderr():
        from executorch.extension.pybindings import portable_lib

        try:
            bundled = portable_lib._load_bundled_program_from_buffer(buf)
        except Exception as e:
            raise BundleError(f"cannot load {path.name}: {first_line(e)}", "re-export the bundle") from None
        for i in range(n):
            try:
                bundled.verify_result_with_bundled_expected_output("forward", i, float(rtol), float(atol))
                results.append(True)
            except RuntimeError:  # "Result verification failed" (and execution failures)
                results.append(False)
    return results
