"""The manifest's records, built from what an export produced (edgeth.bundle.export writes them).

  artifact_record   one program on one target: files, precision, plan, report, preflight,
                    tolerances (the "broken export" floor) and its gates' bounds per output
  target_record     a target's precision, its floor per recorded pipeline stage (by name, from
                    the row of the kind the PipelineSpec declares) and its quality budget
                    (gate 2: `quality` per stage, `budget` as STAGE:METRIC=BOUND)
  add_quantization  the quantization record (deterministic part) + measured times in `created`
  split_volatile    measured wall times out of deterministic records
"""
from __future__ import annotations

import json
from typing import Any

def json_clean(obj: Any) -> Any:
    """JSON-safe and deterministic (sorted keys, tuples as lists, odd objects as strings)."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def artifact_record(art, program, plan, preflight: list) -> dict[str, Any]:
    from edgeth.tolerances import quality_for, runtime_for, tolerance_for

    found = preflight + [w for w in art.report.get("preflight", []) if w not in preflight]  # + the export's own
    return {"files": list(art.files), "precision": art.precision,
            "quantization": plan.to_json() if plan is not None else {"precision": "fp32"},
            "report": art.report, "preflight": found,
            "tolerances": {s.name: tolerance_for(art.precision, s.kind) for s in program.outputs},
            "gates": {"runtime": {s.name: runtime_for(art.precision, s.kind) for s in program.outputs},
                      "quality": {s.name: quality_for(art.precision, s.kind) for s in program.outputs}}}


def target_record(target: str, programs: list, artifacts: dict, extras: dict, spec) -> dict[str, Any]:
    """The target's precision and its end-to-end tolerance per recorded stage (by stage name,
    from the row of the kind the spec declares for it)."""
    from edgeth.tolerances import quality_for, tolerance_for

    # programs pinned to a precision (the FP32 log-mel frontend), and programs left FP32 by
    # --quantize-only, do not make an INT8 target "mixed" (each artifact records its own)
    free = [p for p in programs if not p.meta.get("precision")] or list(programs)
    precs = {artifacts[p.name][target]["precision"] for p in free}
    if len(precs) == 2 and "fp32" in precs and "mixed" not in precs:
        precs.discard("fp32")
    prec = precs.pop() if len(precs) == 1 else "mixed"
    tol = {"frames": tolerance_for(prec, "frames")}
    quality = {"frames": quality_for(prec, "frames")}
    for k in extras:
        tol[k] = tolerance_for(prec, spec.stage_kind(k))
        quality[k] = quality_for(prec, spec.stage_kind(k))
    return {"precision": prec, "tolerances": tol, "quality": quality, "budget": budget_strings(quality)}


def budget_strings(quality: dict[str, dict[str, float]]) -> list[str]:
    """The quality bounds of the stages as budgets (STAGE:METRIC=BOUND, edgeth.quantize.budget)."""
    from edgeth.quantize.budget import TOLERANCE_KEYS

    metric = {key: m for m, key in TOLERANCE_KEYS.items()}
    return [f"{stage}:{metric[k]}={v:g}" for stage, tol in sorted(quality.items()) for k, v in sorted(tol.items())
            if k in metric]


def tolerance_table() -> dict[str, Any]:
    from edgeth.tolerances import table_json

    return table_json()


def gates_table() -> dict[str, Any]:
    from edgeth.tolerances import gates_json

    return gates_json()


def edgeth_version() -> str:
    import edgeth

    return edgeth.__version__


VOLATILE_KEYS = ("seconds", "timing")


def split_volatile(obj: Any, path: str = "") -> tuple[Any, dict[str, Any]]:
    """(obj without measured times, {dotted path: removed value}).

    Wall times differ between two exports of one checkpoint, so they live in the manifest's
    one volatile field (`created`), never beside the deterministic records."""
    if not isinstance(obj, dict):
        return obj, {}
    stable, moved = {}, {}
    for k, v in obj.items():
        where = f"{path}.{k}" if path else k
        if k in VOLATILE_KEYS:
            moved[where] = v
        else:
            stable[k], sub = split_volatile(v, where)
            moved.update(sub)
    return stable, moved


def budget_tolerances(target_records: dict[str, Any], quant_record: dict[str, Any]) -> None:
    """A mixed plan's budget is its targets' end-to-end tolerance on the stage it names."""
    from edgeth.quantize.budget import budget_tolerances

    mixed = (quant_record.get("mixed") or {}).get("mixed") or {}
    bounds = budget_tolerances(mixed.get("budget"))
    for rec in target_records.values():
        if rec.get("precision") != "mixed":
            continue
        for stage, tol in bounds.items():
            rec.setdefault("tolerances", {}).setdefault(stage, {}).update(tol)
            rec.setdefault("quality", {})[stage] = dict(tol)  # the budget is this stage's gate 2
        rec["budget"] = budget_strings(rec.get("quality") or {})


def add_quantization(manifest: dict[str, Any], quant_record: dict[str, Any]) -> None:
    """The quantization record into the manifest: stable part beside the targets, measured
    times into `created`; a mixed plan's budget becomes its targets' stage tolerance."""
    if not quant_record:
        return
    stable, measured = split_volatile(quant_record)
    manifest["quantization"] = stable
    if measured:
        manifest["created"]["quantization"] = measured
    budget_tolerances(manifest["targets"], stable)
