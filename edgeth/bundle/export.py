"""Checkpoint -> verified bundle in one call (`edgeth export`).

  load run -> programs + PipelineSpec -> preflight per target -> reference pipeline run on a
  sample input (PyTorch FP32), capturing golden vectors -> export every program per target
  under its PrecisionPlan -> attach golden (e.g. ExecuTorch .bpte) -> run every exported
  program on every golden call and fail the export if parity fails -> manifest -> rename.

Everything is written into a temp folder next to `out` and renamed into place at the end,
so a failed or interrupted export leaves no half-written bundle. Exports are
deterministic: two exports of one checkpoint have identical manifests except `created`
(the one volatile field: timestamp and measured wall times).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeth.bundle import golden as G
from edgeth.bundle import records as R
from edgeth.bundle.io import hash_tree, write_manifest, write_tar
from edgeth.bundle.manifest import FORMAT, FORMAT_VERSION, tool_versions, validate
from edgeth.bundle.reference import copy_reference, resolve_family, run_preset
from edgeth.errors import CheckFailed, InputError, TargetUnavailable, UnsupportedOp
from edgeth.io_utils import atomic_path


@dataclass
class ExportResult:
    path: Path
    tar: Path | None
    manifest: dict[str, Any]
    checks: list = field(default_factory=list)  # parity Checks of every exported program
    seconds: dict[str, float] = field(default_factory=dict)  # per step


def resolve_targets(names: list[str] | None) -> list[str]:
    """The targets to export: the named ones (each must be able to export here), all available
    ones for None, none for [] (a reference-only bundle, runnable on the torch backend)."""
    from edgeth.targets import get_target, target_names

    if names is None:
        avail = {n: get_target(n).available() for n in target_names()}
        ok = [n for n, a in avail.items() if a.ok]
        if not ok:
            why = "; ".join(f"{n}: {a.reason}" for n, a in avail.items())
            raise TargetUnavailable(f"no export target is available here ({why})", "install executorch or onnx")
        return ok
    out = []
    for n in names:
        a = get_target(n).available()  # unknown names list the registered targets
        if not a.ok:
            raise TargetUnavailable(f"target {n!r} cannot export here: {a.reason}",
                                    "drop it from --target, or fix what the reason says")
        if n not in out:
            out.append(n)
    return out


def make_plans(programs: list, precision: str = "fp32") -> dict[str, Any]:
    """A PrecisionPlan per program. Only fp32 exists until the quantization issue lands."""
    from edgeth.quantize.plan import PRECISIONS, PrecisionPlan

    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}", f"choose one of: {', '.join(PRECISIONS)}")
    if precision != "fp32":
        raise InputError(f"precision {precision!r} needs calibration", "use edgeth.quantize.planning.make_plans")
    return {p.name: PrecisionPlan("fp32") for p in programs}


def sample_input(spec, seed: int = 0, seconds: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic portrait + speech clip (edgeth.data.synth) at the pipeline's size and rate."""
    from edgeth.data.synth import sample_inputs
    from edgeth.data.video import read_audio, read_image

    if seconds is None:
        seconds = spec.clip_seconds()
    with tempfile.TemporaryDirectory(prefix="edgeth-sample-") as d:
        png, wav, _ = sample_inputs(Path(d), spec.image_size, seconds, seed)
        return read_image(png, size=spec.image_size), read_audio(wav, sample_rate=spec.audio.get("sample_rate", 16000))


def export_bundle(run_dir: str | Path, out: str | Path, *, model: str | None = None,
                  targets: list[str] | None = None, precision: str = "fp32", plans: dict[str, Any] | None = None,
                  image: np.ndarray | None = None, audio: np.ndarray | None = None, seed: int = 0,
                  seconds: float | None = None, options: dict[str, Any] | None = None, golden_calls: int = 8,
                  tar: bool = False, threads: int | None = None, progress: bool = True,
                  quantize: dict[str, Any] | None = None, cache: str | Path | None = None) -> ExportResult:
    """Export the checkpoint in `run_dir` into a verified bundle at `out` (see module docstring).

    `precision` is one precision for every target, or per target ("executorch=int8,onnx=fp16");
    `quantize` holds the quantization options (budget, calib_dir, calib_clips, cache_dir) for
    edgeth.quantize.planning.make_plans. `cache`: a folder of lowered programs reused across
    exports (edgeth.targets.lowering_cache; default $EDGETH_EXPORT_CACHE, else none)."""
    from edgeth.targets.lowering_cache import using
    from edgeth.targets.provenance import shared_provenance

    with using(cache), shared_provenance():  # targets/provenance.py: FX passes without the quadratic copy
        return _export_bundle(Path(run_dir), Path(out), model, targets, precision, plans, image, audio, seed, seconds,
                              options, golden_calls, tar, threads, progress, quantize)


def _export_bundle(run_dir: Path, out: Path, model, targets, precision, plans, image, audio, seed, seconds, options,
                   golden_calls, tar, threads, progress, quantize) -> ExportResult:
    _check_out(out)
    t = {"start": time.perf_counter()}
    family, programs, spec = _load_family(run_dir, model)
    target_list = resolve_targets(targets)
    options = spec.parse_options(options)
    quant_record: dict[str, Any] = {}
    per_target: dict[str, dict[str, Any]] = {}
    if plans is None:
        plans, per_target, quant_record = _quantization_plans(programs, spec, precision, target_list, quantize, seed,
                                                              options, threads, progress)
    preflight = _preflight(target_list, programs, {t: per_target.get(t, plans) for t in target_list})
    t["preflight"] = time.perf_counter()
    ref = _reference_run(programs, spec, image, audio, seed, seconds, options, golden_calls, progress)
    t["reference"] = time.perf_counter()

    with atomic_path(out, is_dir=True) as tmp:
        ref_files, ckpt_sha = copy_reference(family, run_dir, tmp / "reference")
        records = _golden_files(tmp, programs, ref.recorder)
        pipe_arrays = G.pipeline_arrays(ref.image, ref.audio, ref.result.frames, ref.noise.drawn, ref.result.extras,
                                        stages=spec.stage_names() if spec.stages else None)
        (tmp / "golden").mkdir(exist_ok=True)
        G.save_npz(tmp / "golden" / "pipeline.npz", pipe_arrays)
        _, extras = G.split_pipeline(pipe_arrays)
        artifacts = _export_artifacts(tmp, target_list, programs, plans, per_target, preflight, ref.recorder, progress)
        t["export"] = time.perf_counter()

        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "created": {"at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
            "producer": {"edgeth": R.edgeth_version(), "tools": tool_versions()},
            "model": {"family": family.name, "preset": run_preset(run_dir), "checkpoint_sha256": ckpt_sha,
                      "reference": ref_files},
            "precision": precision,
            "targets": {tg: R.target_record(tg, programs, artifacts, extras, spec) for tg in target_list},
            "programs": [{"name": p.name, **p.signature_json(), "golden": records[p.name], "artifacts": artifacts[p.name]}
                         for p in programs],
            "pipeline": spec.to_json(),
            "golden": {"file": "golden/pipeline.npz", "seed": int(seed), "options": options,
                       "noise": sorted(ref.noise.drawn), "extras": sorted(extras),
                       "frames": list(np.shape(ref.result.frames)), "image": list(ref.image.shape),
                       "audio_samples": int(ref.audio.shape[0])},
            "tolerances": R.tolerance_table(),
            "gates": R.gates_table(),
            "files": {},
        }
        R.add_quantization(manifest, quant_record)
        manifest = R.json_clean(manifest)
        checks, verified = _verify_exports(tmp, manifest, ref.recorder, threads, progress)
        for tg, rec in manifest["targets"].items():
            rec.update(verified[tg])  # verified_at_export False: runs elsewhere (Core ML on Linux, TensorRT)
        t["verify"] = time.perf_counter()
        manifest["created"]["seconds"] = _durations(t)
        manifest["files"] = hash_tree(tmp)
        validate(manifest)
        write_manifest(tmp, manifest)
    tar_path = write_tar(out) if tar else None
    t["end"] = time.perf_counter()
    return ExportResult(out, tar_path, manifest, checks, _durations(t))


def _load_family(run_dir: Path, model: str | None):
    """(family, programs, spec) of a run; the spec must name only programs the family built."""
    family = resolve_family(run_dir, model)
    run = family.load(run_dir)
    programs = list(family.programs(run))
    spec = family.pipeline(run)
    spec.check_programs(programs)
    return family, programs, spec


@dataclass
class _Reference:
    image: np.ndarray
    audio: np.ndarray
    recorder: G.GoldenRecorder
    noise: Any
    result: Any


def _reference_run(programs, spec, image, audio, seed, seconds, options, golden_calls, progress) -> _Reference:
    """The PyTorch FP32 pipeline on the sample input, recording golden calls, noise and stages."""
    from edgeth.runtime_py.pipeline import check_audio, check_image
    from edgeth.runtime_py.pipelines import SeededNoise, get_pipeline
    from edgeth.runtime_py.torch_backend import torch_call

    if image is None or audio is None:
        image, audio = sample_input(spec, seed, seconds)
    image, audio = check_image(image), check_audio(audio)
    recorder = G.GoldenRecorder(torch_call(programs), golden_calls)
    noise = SeededNoise(seed)
    result = get_pipeline(spec.kind)(spec, recorder, image=image, audio=audio, noise=noise, progress=progress, **options)
    _check_stages(spec, result)
    return _Reference(image, audio, recorder, noise, result)


def _export_artifacts(tmp: Path, target_list, programs, plans, per_target, preflight, recorder,
                      progress) -> dict[str, dict[str, Any]]:
    """Every program through every target (+ target-native golden files): {program: {target: record}}."""
    from tqdm import tqdm

    from edgeth.targets import get_target

    artifacts: dict[str, dict[str, Any]] = {p.name: {} for p in programs}
    bar = tqdm(total=len(target_list) * len(programs), desc="export", unit="program", disable=not progress)
    for target in target_list:
        tgt = get_target(target)
        (tmp / target).mkdir(exist_ok=True)
        for p in programs:
            bar.set_postfix_str(f"{target}:{p.name}")
            plan = per_target.get(target, plans)[p.name]
            art = export_program(tgt, p, plan, tmp / target)
            calls = recorder.calls.get(p.name, [])
            if calls:
                extra = tgt.attach_golden(tmp / target, art, [c[0] for c in calls], [c[1] for c in calls]) or []
                art.files = list(art.files) + [f for f in extra if f not in art.files]
            artifacts[p.name][target] = R.artifact_record(art, p, plan, preflight[target][p.name])
            bar.update(1)
    bar.close()
    return artifacts


def _durations(t: dict[str, float]) -> dict[str, float]:
    """Seconds per step from consecutive perf_counter marks."""
    keys = list(t)
    return {keys[i]: round(t[keys[i]] - t[keys[i - 1]], 3) for i in range(1, len(keys))}


def _quantization_plans(programs, spec, precision: str, targets: list[str], quantize, seed, options, threads,
                        progress) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, Any]]:
    """(plans, per-target plans, manifest record) for `precision` ("int8" or "executorch=int8,onnx=fp16")."""
    import os

    from edgeth.quantize.planning import make_plans as quant_plans
    from edgeth.targets import get_target

    q = dict(quantize or {})
    q.setdefault("cache_dir", Path(os.environ.get("EDGETH_CACHE", Path.home() / ".cache" / "edgeth")) / "calibration")
    wanted = _precision_per_target(precision, targets)
    budget = q.pop("budget", None)
    if budget and "mixed" not in wanted.values():
        raise InputError("--budget applies to --precision mixed", "drop --budget or export with --precision mixed")
    by_precision = {}
    for prec in dict.fromkeys(wanted.values()):
        runnable = [t for t, p in wanted.items() if t and p == prec and get_target(t).runtime_available().ok]
        by_precision[prec] = quant_plans(programs, spec, prec, seed=seed, options=options, threads=threads,
                                         progress=progress, budget=budget if prec == "mixed" else None,
                                         verify_target=runnable[0] if prec == "mixed" and runnable else None, **q)
    per_target = {t: by_precision[p].plans for t, p in wanted.items() if t}
    first = by_precision[wanted[targets[0]]].plans if targets else by_precision[next(iter(by_precision))].plans
    record = {p: r.to_json() for p, r in by_precision.items() if p != "fp32"}
    for r in record.values():
        r.pop("plans", None)  # per-artifact records hold each plan
    return first, per_target, record


def _precision_per_target(precision: str, targets: list[str]) -> dict[str, str]:
    from edgeth.quantize.planning import parse_precision

    text = (precision or "fp32").strip()
    if "=" not in text:
        p = parse_precision(text)
        return {t: p for t in targets} or {"": p}
    out = {}
    for part in (x.strip() for x in text.split(",") if x.strip()):
        t, _, p = part.partition("=")
        if t.strip() not in targets:
            raise InputError(f"--precision names target {t.strip()!r}, which is not exported",
                             f"targets: {', '.join(targets)}")
        out[t.strip()] = parse_precision(p)
    for t in targets:
        out.setdefault(t, "fp32")
    return out


def _check_stages(spec, result) -> None:
    """Every stage the spec declares must come out of its driver (else verify has nothing to judge)."""
    missing = [s for s in spec.stage_names() if s != "frames" and s not in result.extras]
    if missing:
        raise InputError(f"pipeline {spec.kind!r} declares stages its driver did not record: {', '.join(missing)}",
                         "this is a model-family bug: record them in the driver's extras or drop them from stages")


def _check_out(out: Path) -> None:
    """`out` is replaced as a whole: refuse a file, or a non-empty folder that is not a bundle."""
    from edgeth.bundle.manifest import MANIFEST

    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file", "pass a folder path for the bundle")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise InputError(f"--out {out} exists and is not a bundle (it would be replaced)",
                         "choose a new folder, or empty this one first")


def export_program(target, program, plan, out_dir: Path):
    """One program through one target under its PrecisionPlan -> Artifact."""
    art = target.export(program, plan, out_dir)
    if art.precision != getattr(plan, "precision", "fp32"):
        raise UnsupportedOp(f"{target.name} exported {program.name} at {art.precision}, plan asked {plan.precision}",
                            "this is a target bug; report it")
    return art


def _preflight(targets: list[str], programs: list, plans: dict[str, dict[str, Any]]) -> dict[str, dict[str, list]]:
    """Every program's preflight per target, at the precision its plan exports it."""
    from edgeth.targets import get_target
    from edgeth.targets.common import precision_of

    out: dict[str, dict[str, list]] = {}
    errors = []
    for tg in targets:
        out[tg] = {}
        for p in programs:
            issues = get_target(tg).preflight(p, precision_of(plans[tg][p.name]))
            out[tg][p.name] = [dataclasses.asdict(i) for i in issues]
            errors += [f"{tg}:{p.name}: {i.construct} at {i.module_path} ({i.advice})" for i in issues if i.severity == "error"]
    if errors:
        raise UnsupportedOp("preflight found constructs the target cannot lower: " + "; ".join(errors),
                            "change the model or drop that target from --target")
    return out


def _golden_files(root: Path, programs: list, recorder: G.GoldenRecorder) -> dict[str, dict[str, Any]]:
    (root / "golden").mkdir(parents=True, exist_ok=True)
    out = {}
    for p in programs:
        calls = recorder.calls.get(p.name, [])
        if not calls:
            raise InputError(f"the reference pipeline never called program {p.name!r}",
                             "use a longer sample input (--seconds) or check the pipeline spec")
        rel = f"golden/{p.name}.npz"
        G.save_npz(root / rel, G.program_arrays(p.input_names, p.output_names, calls))
        out[p.name] = {"file": rel, "calls": len(calls), "calls_total": recorder.counts[p.name]}
    return out


def _verify_exports(root: Path, manifest: dict, recorder: G.GoldenRecorder, threads: int | None,
                    progress: bool) -> tuple[list, dict[str, dict[str, Any]]]:
    """Run every exported program on its golden calls; CheckFailed if any output misses its
    "broken export" floor. What each artifact returned is recorded as its expected outputs
    (gate 1, edgeth/bundle/expected.py).

    Returns (checks, {target: its manifest fields}): `verified_at_export` (its runtime ran every
    program), and where the runtime is absent here but a simulator ran the artifacts (Core ML on
    Linux) `simulated_at_export` = the simulator's backend, with `not_simulated` {program: why}
    for any it could not run. A simulator's checks are named after it ("coreml-sim:coreml/...")."""
    from tqdm import tqdm

    from edgeth.bundle.expected import export_runner, record_expected
    from edgeth.bundle.io import Bundle
    from edgeth.runtime_py.backends import check_inputs
    from edgeth.runtime_py.gates import compare_calls

    bundle = Bundle(root, manifest, root)
    checks, ran, missed = [], {}, {}
    items = [(tg, p["name"]) for tg in manifest["targets"] for p in manifest["programs"]]
    for tg, name in tqdm(items, desc="verify", unit="program", disable=not progress, leave=False):
        run, source = export_runner(tg, root / tg, bundle.entry(name, tg), threads)
        if run is None:  # nothing here runs it (TensorRT): `edgeth verify` runs it on the device
            missed.setdefault(tg, {})[name] = source
            continue
        ran.setdefault(tg, set()).add(source)
        ins_specs, _ = bundle.specs(name)
        calls = recorder.calls[name]
        got = [list(run(*check_inputs(name, ins_specs, ins))) for ins, _ in calls]
        record_expected(root, bundle.program(name), tg, calls, got, source)
        pairs = [(i, ref, g) for i, ((_, ref), g) in enumerate(zip(calls, got))]
        for c in compare_calls(bundle, name, pairs, lambda o: bundle.tolerance(name, o, tg), "program", len(calls)):
            c.name = f"{source + ':' if source else ''}{tg}/{c.name}"
            checks.append(c)
    bad = [c for c in checks if not c.passed]
    if bad:
        raise CheckFailed("exported programs miss FP32 parity: " + "; ".join(f"{c.name}: {c.worst}" for c in bad[:6]),
                          "the export is wrong; nothing was written (EDGETH_DEBUG=1 for details)")
    verified = {}
    for tg in manifest["targets"]:
        sources = ran.get(tg, set())
        verified[tg] = {"verified_at_export": sources == {None}}
        sims = sorted(s for s in sources if s)
        if sims:
            verified[tg].update(simulated_at_export=sims[0], **({"not_simulated": missed[tg]} if tg in missed else {}))
    return checks, verified
