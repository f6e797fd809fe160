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


def count_cases(buf: bytes, method: str = "forward") -> int:
    """The number of test cases bundled for `method`, read from the BundledProgram flatbuffer's
    tables (executorch/devtools/bundled_program/schema/bundled_program_schema.fbs: root
    BundledProgram{version, method_test_suites, program}, BundledMethodTestSuite{method_name,
    test_cases}). ExecuTorch's own deserializer decompiles the whole file, program and tensors
    included, through flatc (about a second per program); this reads four offsets.
    ValueError when the bytes are not a BundledProgram."""
    import struct

    def u32(at: int) -> int:
        if at < 0 or at + 4 > len(buf):
            raise ValueError("offset out of range")
        return struct.unpack_from("<I", buf, at)[0]

    def field(table: int, index: int) -> int | None:
        """Absolute position of the object a table's offset field points to (None if absent)."""
        vtable = table - struct.unpack_from("<i", buf, table)[0]
        vsize = struct.unpack_from("<H", buf, vtable)[0] if 0 <= vtable <= len(buf) - 2 else 0
        if 4 + 2 * index + 2 > vsize:
            return None
        off = struct.unpack_from("<H", buf, vtable + 4 + 2 * index)[0]
        return None if off == 0 else table + off + u32(table + off)

    if len(buf) < 8 or buf[4:8] != b"BP08":
        raise ValueError("no BundledProgram file identifier (BP08)")
    try:
        root = u32(0)
        suites = field(root, 1)
        total = 0
        for i in range(u32(suites) if suites is not None else 0):
            at = suites + 4 + 4 * i
            suite = at + u32(at)
            name = field(suite, 0)
            if name is None or buf[name + 4:name + 4 + u32(name)] != method.encode():
                continue
            cases = field(suite, 1)
            total += u32(cases) if cases is not None else 0
        return total
    except struct.error:
        raise ValueError("truncated BundledProgram") from None


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
