"""Gather what the parity report shows from exported bundles (used by `edgeth report` and `build`).

For every runnable backend of every bundle: each program's first golden call (error array
for the histogram + the verify checks), the golden pipeline replayed with the recorded
noise (per-frame PSNR/SSIM/Flow Smoothness against the PyTorch frames), plus plans,
ExecuTorch delegation and provenance from the manifests.

Shape legend: T frames, H/W image size; frames are [T, H, W, 3] float32 in [0, 1].
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeth.report import ReportData


@dataclass
class BackendResult:
    """One bundle on one backend: verify checks, program errors, the replayed video."""

    bundle: Any
    backend: str
    target: str | None
    precision: str
    checks: list = field(default_factory=list)  # runtime_py.parity.Check
    errors: dict[str, np.ndarray] = field(default_factory=dict)  # program -> got - ref (first output, call 0)
    frames: np.ndarray | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def name(self) -> str:
        """The target, or the backend when it is a simulator of one (coreml-sim is never "coreml")."""
        from edgeth.runtime_py.backends import SIMULATORS

        return self.backend if self.backend in SIMULATORS else (self.target or self.backend)

    @property
    def label(self) -> str:
        return f"{self.name} {self.precision}"

    def frames_check(self):
        """The frames check vs the FP32 reference (quality gate) when there is one, else any."""
        frames = [c for c in self.checks if c.name.endswith("/frames")]
        return next((c for c in frames if c.name.startswith("quality/")), frames[0] if frames else None)


def frame_flow_curve(frames: np.ndarray) -> np.ndarray:
    """Flow Smoothness per frame transition: mean |x[t+1] - 2 x[t] + x[t-1]| for each t in 1..T-2
    (edgeth.runtime_py.parity.flow_smoothness is the mean of this curve)."""
    x = np.asarray(frames, dtype=np.float64)
    if x.shape[0] < 3:
        return np.zeros(0)
    d2 = np.abs(x[2:] - 2 * x[1:-1] + x[:-2])
    return d2.reshape(d2.shape[0], -1).mean(axis=1)


def run_backend(bundle, backend: str, threads: int | None = None) -> BackendResult:
    """Verify `bundle` on `backend`, keeping the arrays the report plots."""
    from edgeth.runtime_py.backends import program_call, target_for_backend
    from edgeth.runtime_py.pipeline import Pipeline
    from edgeth.runtime_py.verify import compare_stages, verify_bundle

    t0 = time.perf_counter()
    target = target_for_backend(backend)
    prec = "fp32" if target is None else bundle.manifest["targets"][target].get("precision", "fp32")
    res = BackendResult(bundle, backend, target, prec)
    res.checks = list(verify_bundle(bundle, backend, threads=threads, pipeline=False).checks)
    call = program_call(bundle, backend, threads)
    for name in bundle.program_names:
        ins, outs = bundle.golden_calls(name)[0]
        got = call(name, ins)
        res.errors[name] = np.asarray(got[0], np.float64) - np.asarray(outs[0], np.float64)
    out = Pipeline(bundle, backend, threads, call=call).run_golden()
    res.frames, res.extras = out.frames, out.extras
    res.checks += compare_stages(bundle, target, out.frames, out.extras)
    res.seconds = time.perf_counter() - t0
    return res


def measured_on(bundle) -> str:
    """What a bundle's pipeline figures measure: its golden clip against its own FP32 frames."""
    g = bundle.manifest.get("golden", {})
    n = (g.get("frames") or [0])[0]
    return (f"{bundle.source.name}: golden clip ({n} frames, seed {g.get('seed', 0)}) replayed with its recorded "
            f"noise, vs the PyTorch FP32 frames recorded at export")


def run_runnable(bundle, backends: list[str] | None = None,
                 threads: int | None = None) -> tuple[list[BackendResult], dict[str, str]]:
    """`run_backend` on every exported backend of `bundle` that runs here (or those named), and
    {"target precision": why not} for the bundle's targets whose runtime is absent here."""
    from edgeth.bench.bundle import runnable_backends
    from edgeth.runtime_py.backends import backend_for_target

    ok, why = runnable_backends(bundle, backends)
    skipped = {f"{t} {bundle.manifest['targets'][t].get('precision', 'fp32')}": why[backend_for_target(t)]
               for t in bundle.targets if backend_for_target(t) in why}
    return [run_backend(bundle, b, threads) for b in ok if b != "torch"], skipped


def _program_rows(r: BackendResult) -> list[dict[str, Any]]:
    rows = []
    by_prog: dict[str, list] = {}
    runtime: dict[str, list] = {}
    for c in r.checks:
        parts = c.name.split("/")
        if len(parts) < 3 or parts[1] in ("pipeline", "bundled"):
            continue  # program checks are <gate>/<program>/<output>
        (runtime if parts[0] == "runtime" else by_prog).setdefault(parts[1], []).append(c)
    for name, checks in by_prog.items():
        metrics: dict[str, Any] = {}
        for c in checks:  # worst value over outputs/calls
            for k, v in c.metrics.items():
                if not isinstance(v, (int, float)):
                    continue
                worse = max if k in ("max_abs", "mean_abs") else min
                metrics[k] = worse(metrics[k], v) if k in metrics else v
        tol = checks[0].tolerance if checks else {}
        rows.append({"program": name, "target": r.name, "precision": r.precision,
                     "metrics": metrics, "tolerance": tol, "passed": all(c.passed for c in checks),
                     "runtime": ("n/a" if name not in runtime else
                                 "pass" if all(c.passed for c in runtime[name]) else "fail"),
                     "errors": r.errors.get(name)})
    return rows


def _plans(bundle) -> list[dict[str, Any]]:
    rows = []
    for p in bundle.programs:
        for target, art in p["artifacts"].items():
            q = art.get("quantization") or {}
            if q.get("precision") in (None, "fp32") or not (q.get("float_layers") or q.get("precision") == "mixed"):
                continue  # only plans that kept something float (or were searched) say anything
            notes = q.get("notes") or {}
            rows.append({"program": p["name"], "target": target, "precision": q.get("precision"),
                         "float_layers": q.get("float_layers") or [], "costs": notes.get("why_float") or {},
                         "notes": "; ".join(f"{k}: {v}" for k, v in notes.items()
                                            if k in ("full_int8_quality", "simulated_quality", "search", "mixed"))})
    return rows


def _delegation(bundle) -> list[dict[str, Any]]:
    rows = []
    for p in bundle.programs:
        rep = (p["artifacts"].get("executorch") or {}).get("report") or {}
        if "delegated_ops" in rep:
            rows.append({"program": p["name"], "precision": p["artifacts"]["executorch"].get("precision"),
                         "delegated": rep.get("delegated_ops") or {}, "fallback": rep.get("portable_compute_ops") or {}})
    return rows


def _provenance(bundle) -> dict[str, Any]:
    m = bundle.manifest
    prov = {"model": f"{m['model']['family']} ({m['model'].get('preset') or '?'})",
            "checkpoint sha256": m["model"].get("checkpoint_sha256", ""), "bundle created": m.get("created", ""),
            "edgeth": (m.get("producer") or {}).get("edgeth", "")}
    prov["tools"] = (m.get("producer") or {}).get("tools", {})
    return prov


def report_data(results: list[BackendResult], *, summary: list[dict[str, Any]] | None = None,
                bench: dict[str, Any] | None = None, title: str = "edgeth parity report",
                skipped: dict[str, str] | None = None) -> ReportData:
    """Build the ReportData; `summary` defaults to one row per backend result (+ skipped targets)."""
    bundles = list({id(r.bundle): r.bundle for r in results}.values())
    d = ReportData(title=title, bench=bench)
    if not bundles:
        d.summary = summary or []
        return d
    first = bundles[0]
    d.model = first.family
    d.fps = int(first.pipeline_spec().fps)
    ref = first.pipeline_golden()["frames"]
    d.reference_frames = ref
    d.psnr_threshold = first.stage_tolerance("frames", None).get("psnr_db")
    d.provenance = _provenance(first)
    for b in bundles:
        d.plans += _plans(b)
        d.delegation += [row for row in _delegation(b) if row not in d.delegation]
    for r in results:
        if r.target is None:  # the torch backend is the reference itself
            continue
        d.programs += _program_rows(r)
        fc = r.frames_check()
        if r.frames is not None and fc is not None and fc.detail.get("curve"):
            # the very curve the frames check judged (vs this bundle's own golden frames): the
            # summary's worst frame and this table's are one measurement, not two
            curve = fc.detail["curve"]
            d.sequences.append({"label": r.label, "target": r.target, "precision": r.precision,
                                "psnr": curve["psnr_db"], "ssim": curve["ssim"], "flow": frame_flow_curve(r.frames),
                                "frames": r.frames, "measured": measured_on(r.bundle)})
        for c in r.checks:
            if "token_agreement" in c.metrics:
                tok = c.detail.get("tokens") or {}
                d.tokens.append({"program": c.name, "label": r.label, "agreement": c.metrics["token_agreement"],
                                 "per_layer": tok.get("per_layer"),
                                 "first_diverging_frame": tok.get("first_diverging_frame")})
    if d.sequences:
        d.sequences.insert(0, {"label": "PyTorch FP32 reference (flow only)", "psnr": [], "ssim": [],
                               "flow": frame_flow_curve(ref), "frames": None})
    d.summary = summary if summary is not None else summary_rows(results, bench, skipped)
    return d


def stage_figures(r: BackendResult) -> dict[str, dict[str, float]]:
    """{stage: {metric: worst value}} of every pipeline stage check (kinds from the spec)."""
    out = {}
    for c in r.checks:
        if c.name.startswith("quality/pipeline/"):
            keep = ("psnr_db", "ssim", "cosine", "token_agreement", "max_abs")
            out[c.name.rsplit("/", 1)[1]] = {k: v for k, v in c.metrics.items() if k in keep and isinstance(v, (int, float))}
    return out


def summary_rows(results: list[BackendResult], bench: dict[str, Any] | None = None,
                 skipped: dict[str, str] | None = None, failed: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """target x precision rows: pass / budget (runs as the host does, misses only the quality budget
    vs FP32, above the broken-export floor) / fail, which gate failed (`gates`: runtime = device == host,
    quality = vs FP32 within the budget), worst-frame PSNR, end-to-end speed ratio, size."""
    from edgeth.runtime_py.gates import budget_only, gate_status

    pipe = {(r["backend"], r.get("precision")): r for r in (bench or {}).get("pipeline", [])}
    rows = []
    for r in results:
        if r.target is None:
            continue
        fc = r.frames_check()
        b = pipe.get((r.backend, r.precision), {})
        status = "pass" if r.passed else ("budget" if budget_only(r.checks) else "fail")
        rows.append({"target": r.name, "precision": r.precision, "status": status,
                     "gates": gate_status(r.checks),
                     "worst_psnr_db": fc.metrics.get("psnr_db") if fc else None, "measured": measured_on(r.bundle),
                     "stages": stage_figures(r),
                     "worst_frame": (fc.detail.get("curve") or {}).get("worst_frame") if fc else None,
                     "speed_ratio": b.get("speed_ratio"), "size_bytes": b.get("size_bytes"),
                     "reason": "" if r.passed else "; ".join(f"{c.name}: {c.worst}" for c in r.checks
                                                             if not c.passed)[:200]})
    for status, keyed in (("fail", failed or {}), ("skipped", skipped or {})):
        for key, why in keyed.items():  # keys are "target precision"
            target, _, prec = key.partition(" ")
            rows.append({"target": target, "precision": prec, "status": status, "reason": why})
    return rows
