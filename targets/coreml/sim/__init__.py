"""coreml-sim: a numpy SIMULATION of Core ML's semantics for the ML Program in an .mlpackage.
It is not Core ML: it never calls Core ML, and its numbers are labelled `coreml-sim` everywhere.

Follows: the ML Program of coremltools 9.0 (read back with its MIL proto reader, weights from
the package's weight.bin) and the MIL op definitions in coremltools' ops/defs/iOS15..iOS18.
What it covers is the op table (sim/ops.py + sim/ops_nn.py); the contract, with the ops every
registered family emits at every precision, is in targets/coreml/README.md.

Precision rules (choices, stated; Core ML's own kernels are not public):
  - every op computes in float32: float16 inputs are widened, products/sums accumulate in
    float32 (conv/linear/matmul via sgemm; softmax, norms and reductions in float32) -- the
    GPU's default typed execution ("fp16 storage, fp32 arithmetic")
  - every op's outputs are stored in the dtype the program declares: an fp16 op's result is
    rounded to fp16 (round-to-nearest-even) and overflows to inf past 65504, at exactly the
    tensors where the device stores fp16; fp32 programs stay fp32 throughout
  - quantize rounds half to even then clips; constexpr_* weight decompression runs once at load
  - the Neural Engine (fp16 arithmetic too) and the CPU (which may compute fp16 programs in
    fp32) can differ from this by fp16 rounding; on macOS the tests state the measured gap

  make_runner(dir, entry)   the ArrayRunner of backend `coreml-sim` (inputs checked first)
  structure_checks(...)     spec loads, I/O match the manifest, ops within the deployment
                            target, weight files hash as the manifest records
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

BACKEND = "coreml-sim"
LABEL = "coreml-sim (numpy simulation of Core ML semantics, not Core ML)"


def make_runner(artifact_dir: Path, entry: dict[str, Any], threads: int | None = None):
    """Load + compile `entry`'s .mlpackage; refuse it if its I/O disagree with the manifest."""
    from edgeth.errors import BundleError
    from edgeth.targets.common import ArrayRunner, artifact_file, entry_specs
    from edgeth.targets.coreml.sim.program import SimProgram
    from edgeth.targets.coreml.sim.structure import io_problems

    path = artifact_file(artifact_dir, entry, ".mlpackage")
    prog = SimProgram(path, str(entry.get("name", path.stem)))
    bad = io_problems(prog, entry)
    if bad:
        raise BundleError(f"{path.name}: {bad[0]}", "the .mlpackage does not match its manifest entry; re-export the bundle")
    ins, outs = entry_specs(entry)

    def run(arrays: list) -> list:
        res = prog.run({s.name: a for s, a in zip(ins, arrays)})
        by_name = dict(zip(prog.outputs, res))
        return [by_name[s.name].astype(s.dtype, copy=False) for s in outs]

    runner = ArrayRunner(entry, run, BACKEND)
    runner.program = prog
    return runner


def structure_checks(bundle) -> list:
    from edgeth.targets.coreml.sim.structure import structure_checks as checks

    return checks(bundle)
