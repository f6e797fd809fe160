"""Per-artifact expected outputs (gate 1, device == host), written at export.

Every artifact that runs on the exporting machine carries the host runtime's outputs of
*that* artifact on the golden inputs, so a device is compared with the same program run
correctly elsewhere, not only with the FP32 reference (whose INT8 quantization error would
hide a kernel bug):

  golden/<target>/<program>.npz   `out_<name>` stacked [N, ...] over the program's N golden
                                  calls (the inputs are those of golden/<program>.npz)

The artifact's manifest record gets `expected: {"file", "calls"}` (the file is hashed with
every other file). ExecuTorch artifacts at any precision other than fp32 have their
`<program>.bpte` rewritten to embed these outputs instead of the FP32 ones, so the
BundledProgram verifier checks INT8/FP16 programs on the phone too (within the RUNTIME
bound of edgeth/tolerances.py).

Who computes them: the target's own runtime where it runs here. Where it does not but a
simulator of it does (Core ML on Linux: `coreml-sim`, runtime_py/backends.SIMULATORS), the
simulator runs the artifact instead and the record says so (`expected.source`, the target's
`simulated_at_export`): on a Mac, `edgeth verify --backend coreml` and an iPhone's dumps are
then compared with what coreml-sim computed for the same .mlpackage — a simulation of Core ML
semantics (fp32 arithmetic, fp16 storage), so a device within the RUNTIME bound runs it as
the simulation does. Artifacts that nothing here can run (TensorRT) get none; verify says gate 1
needs them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeth.bundle import golden as G


def expected_file(target: str, program: str) -> str:
    return f"golden/{target}/{program}.npz"


def export_runner(target: str, artifact_dir: Path, entry: dict[str, Any], threads: int | None):
    """(runner, source) that computes `target`'s expected outputs on this machine: the target's
    runtime (source None), else its simulator (source = the simulator backend's name), else
    (None, why not). A simulator that cannot load the artifact (an op it lacks) is a why-not,
    not an export failure: the artifact is still exported, gate 1 just cannot be recorded."""
    from edgeth.errors import EdgethError
    from edgeth.runtime_py.backends import simulator_for, simulator_runner
    from edgeth.targets import get_target

    tgt = get_target(target)
    if tgt.runtime_available().ok:
        return tgt.runner(artifact_dir, entry, threads), None
    sim = simulator_for(target)
    if sim is None:
        return None, tgt.runtime_available().reason
    try:
        return simulator_runner(sim, artifact_dir, entry, threads), sim
    except EdgethError as e:
        return None, f"{sim} cannot run {entry.get('name')}: {e.what}"


def record_expected(root: Path, program: dict[str, Any], target: str,
                    calls: list[tuple[list[np.ndarray], list[np.ndarray]]], got: list[list[np.ndarray]],
                    source: str | None = None) -> None:
    """Save the host outputs `got` (one list per golden call) of `program`'s `target` artifact and
    note them in its record (`source`: the simulator that computed them, if not the target's
    runtime); re-embed them into a non-FP32 ExecuTorch .bpte."""
    names = [s["name"] for s in program["outputs"]]
    rel = expected_file(target, program["name"])
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    G.save_npz(root / rel, {f"out_{n}": np.stack([np.asarray(g[j]) for g in got]) for j, n in enumerate(names)})
    art = program["artifacts"][target]
    art["expected"] = {"file": rel, "calls": len(got), **({"source": source} if source else {})}
    if art.get("precision", "fp32") != "fp32":
        _reattach(root / target, program["name"], target, art, [c[0] for c in calls], got)


def _reattach(artifact_dir: Path, name: str, target: str, art: dict[str, Any], inputs: list, got: list) -> None:
    """Rewrite the target-native golden file (the .bpte) with the artifact's own outputs."""
    from edgeth.targets import Artifact, get_target

    if target != "executorch" or not any(f.endswith(".bpte") for f in art["files"]):
        return  # Polygraphy data (TensorRT) and the like keep the FP32 outputs: nothing here runs them
    artifact = Artifact(target, name, list(art["files"]), art["precision"], art.get("report") or {})
    get_target(target).attach_golden(artifact_dir, artifact, inputs, [list(g) for g in got])


def load_expected(bundle, program: str, target: str | None) -> list[list[np.ndarray]] | None:
    """The recorded host outputs of `program` on `target` (one list per golden call), or None."""
    rec = ((bundle.program(program)["artifacts"].get(target or "") or {}).get("expected")) if target else None
    if not rec:
        return None
    key = f"expected:{target}:{program}"
    if key not in bundle.cache:
        arrays = G.load_npz(bundle.root / rec["file"])
        names = [s["name"] for s in bundle.program(program)["outputs"]]
        missing = [n for n in names if f"out_{n}" not in arrays]
        if missing:
            from edgeth.errors import BundleError

            raise BundleError(f"{rec['file']} lacks out_{missing[0]}", "re-export the bundle")
        bundle.cache[key] = [[arrays[f"out_{n}"][i] for n in names] for i in range(int(rec["calls"]))]
    return bundle.cache[key]
