"""Core ML runner: ct.models.MLModel(path).predict({...}); runs on macOS only.

Off macOS the target's runtime_available() says why and runner() raises TargetUnavailable
before touching the model. Outputs come back as float32 numpy arrays in manifest order
(the exporter pins outputs to FP32). `threads` does not apply: Core ML schedules itself
across CPU/GPU/Neural Engine (compute_units=ALL).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeth.errors import BundleError
from edgeth.targets.common import ArrayRunner, artifact_file, entry_specs, first_line, quiet_python


def make_runner(artifact_dir: Path, entry: dict[str, Any], threads: int | None = None) -> ArrayRunner:
    import numpy as np

    path = artifact_file(artifact_dir, entry, ".mlpackage")
    try:
        with quiet_python():
            import coremltools as ct

            model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.ALL)
    except Exception as e:
        raise BundleError(f"cannot load Core ML model {path.name}: {first_line(e)}",
                          "the .mlpackage is corrupt or incomplete; re-export the bundle") from None
    ins, outs = entry_specs(entry)

    def run(arrays: list) -> list:
        try:
            res = model.predict({s.name: a for s, a in zip(ins, arrays)})
        except Exception as e:
            raise BundleError(f"Core ML failed to run {path.name}: {first_line(e)}",
                              "the .mlpackage does not match its manifest entry; re-export the bundle") from None
        missing = [s.name for s in outs if s.name not in res]
        if missing:
            raise BundleError(f"{path.name} returned no output {missing[0]!r}", "re-export the bundle")
        return [np.asarray(res[s.name], dtype=np.dtype(s.dtype)) for s in outs]

    return ArrayRunner(entry, run, "coreml")
