"""`edgeth debug` for a bundle: rebuild one program exactly as exported and report its first divergence.

The bundle holds the FP32 reference checkpoint, each artifact's precision plan (float
layers, budget, calibration key) and golden inputs. The program is rebuilt from the
reference, its calibration set is loaded from the cache by key (or captured again with
the recorded clips and seed, and checked against the key), the plan is re-applied - the
same deterministic quantization the export ran - and edgeth.quantize.divergence compares
every layer on a golden input.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgeth.errors import InputError
from edgeth.quantize.divergence import DivergenceReport, first_divergence
from edgeth.quantize.plan import PrecisionPlan


def default_cache_dir() -> Path:
    return Path(os.environ.get("EDGETH_CACHE", Path.home() / ".cache" / "edgeth")) / "calibration"


def _calibration(bundle: Any, programs: list, precision: str, key: str, cache_dir: Path, calib_dir: Path | None):
    from edgeth.quantize.calibrate import CalibrationSet, cached_capture
    from edgeth.quantize.planning import calibration_clips

    path = cache_dir / f"calib-{key}.npz"
    if key and path.exists():
        return CalibrationSet.load(path), ""
    rec = ((bundle.manifest.get("quantization") or {}).get(precision) or {}).get("calibration") or {}
    source = calib_dir or (None if rec.get("clip_source", "synthetic") == "synthetic" else Path(rec["clip_source"]))
    if source is not None and not Path(source).is_dir():
        raise InputError(f"the calibration clips of this bundle ({source}) are gone and not cached",
                         "pass --calib DIR with the same clips")
    spec = bundle.pipeline_spec()
    clips = calibration_clips(spec, source, int(rec.get("clips", 4)), int(rec.get("seed", 0)))
    calib = cached_capture(cache_dir, programs, spec, clips, seed=int(rec.get("seed", 0)), **rec.get("options", {}))
    note = "" if calib.key == key else (f"re-captured calibration {calib.key} differs from the export's {key}: "
                                        "layer errors may differ slightly from the bundle's program")
    return calib, note


def rebuild_plan(record: dict[str, Any], calib: Any, program: str) -> PrecisionPlan:
    """The PrecisionPlan an artifact was exported with (its manifest record + the calibration set)."""
    precision = record.get("precision", "fp32")
    if precision == "fp32":
        return PrecisionPlan("fp32")
    notes = dict(record.get("notes") or {})
    limit = notes.get("calibration_samples") if precision == "mixed" else None
    return PrecisionPlan(precision, tuple(record.get("float_layers") or ()), record.get("budget"),
                         bool(record.get("io_fp16", False)), calibration=calib.for_program(program, limit), notes=notes)


def debug_bundle(path: str | Path, program: str, *, target: str = "executorch", budget_db: float | None = None,
                 call: int = 0, calib_dir: str | Path | None = None, cache_dir: str | Path | None = None) -> DivergenceReport:
    from edgeth.bundle.io import load_bundle
    from edgeth.bundle.reference import load_reference_programs

    bundle = load_bundle(path)
    arts = bundle.program(program)["artifacts"]  # BundleError listing the programs if unknown
    if target not in arts:
        raise InputError(f"bundle has no {target} artifact for {program}", f"targets: {', '.join(sorted(arts))}")
    record = arts[target].get("quantization") or {"precision": arts[target].get("precision", "fp32")}
    programs = load_reference_programs(bundle)
    calls = bundle.golden_calls(program)
    if not 0 <= call < len(calls):
        raise InputError(f"--call {call} out of range", f"the bundle holds {len(calls)} golden calls of {program}")
    note = ""
    calib = None
    precision = record.get("precision", "fp32")
    if precision != "fp32":
        key = (record.get("notes") or {}).get("calibration_key", "")
        calib, note = _calibration(bundle, list(programs.values()), precision, key,
                                   Path(cache_dir) if cache_dir else default_cache_dir(),
                                   Path(calib_dir) if calib_dir else None)
    plan = rebuild_plan(record, calib, program)
    rep = first_divergence(programs[program], plan, calls[call][0], target=target, budget_db=budget_db)
    if note:
        rep.notes.append(note)
    return rep
