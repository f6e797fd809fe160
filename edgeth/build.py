"""`edgeth build`: the main job, end to end, with one progress display.

  data (synthetic corpus, unless --ckpt)  ->  train the preset on the CPU (unless --ckpt)
  -> per precision: calibration + quantization + export for every target (edgeth.bundle.export)
  -> verification on every backend that runs here (+ the golden pipeline replay)
  -> benchmark (edgeth.bench.bundle)  ->  report.html  ->  summary table

OUT/ layout: data/ (corpus), run/ (checkpoint), bundles/<precision>/ (one bundle per
precision; <precision>-<target>/ when one target failed parity and the others were
re-exported alone), cache/ (calibration captures, lowered programs), bench.json, summary.json, report.html.
Rerunning reuses every step whose stamp (`*.build.json`: the inputs that made it, with
the checkpoint's content hash) still matches and whose files still hash as the manifest
says; anything else is redone.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edgeth.errors import CheckFailed, EdgethError, InputError
from edgeth.io_utils import write_json

DEFAULT_PRECISIONS = ("fp32", "fp16", "int8", "mixed")
# Training steps per stage without --ckpt: keeps `make demo` within 15 minutes on 2 CPU cores.
DEMO_STEPS = 600
# Sampler steps of the golden run every backend replays (verify, bench, report) in the demo.
DEMO_SAMPLER_STEPS = 10


@dataclass(frozen=True)
class BuildConfig:
    model: str = "ifmdm"
    ckpt: str | None = None  # RUN/ to deploy; None: synthesize data and train `preset`
    targets: tuple[str, ...] | None = None  # None: every registered target
    precisions: tuple[str, ...] = DEFAULT_PRECISIONS
    budget: str = "psnr=35"  # accuracy budget of `mixed`
    quantize_only: tuple[str, ...] | None = None  # programs that get the precision (others FP32); None: all
    calib_clips: int | None = None  # calibration clips of int8/mixed (None: quantize.planning's default)
    preset: str = "tiny"
    clips: int = 8
    seconds: float = 4.0
    size: int = 64
    max_steps: int | None = DEMO_STEPS  # cap per training stage (None: the preset's full schedule)
    steps: int | None = DEMO_SAMPLER_STEPS  # sampler steps of the golden run (None: the model's schedule)
    frames: int | None = None  # end-to-end bench length (default: the golden run)
    bench: bool = True
    bench_iters: int = 10
    threads: int | None = None
    seed: int = 0


@dataclass
class BuildResult:
    out: Path
    summary: list[dict[str, Any]]
    report: Path | None
    bundles: dict[str, Path] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)  # step names that were valid and kept
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(r["status"] != "fail" for r in self.summary)


def tree_hash(root: Path) -> str:
    """Content hash of a folder (relative names + bytes), for stamps."""
    h = hashlib.sha256()
    for p in sorted(q for q in Path(root).rglob("*") if q.is_file()):
        if p.name.endswith(".build.json") or "__pycache__" in p.parts:
            continue
        h.update(str(p.relative_to(root)).encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _stamp_ok(stamp: Path, want: dict[str, Any]) -> bool:
    try:
        return json.loads(stamp.read_text()) == json.loads(json.dumps(want))
    except (OSError, ValueError):
        return False


class _Progress:
    """One bar for the whole job: a unit per step, the current step as its description."""

    def __init__(self, total: int, enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc="build", unit="step", disable=not enabled, dynamic_ncols=True)
        self.t0 = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def step(self, name: str):
        self.bar.set_postfix_str(name)
        return _Step(self, name)

    def close(self):
        self.bar.close()


class _Step:
    def __init__(self, p: _Progress, name: str):
        self.p, self.name = p, name

    def __enter__(self):
        self.t = time.perf_counter()

    def __exit__(self, *exc):
        self.p.seconds[self.name] = round(time.perf_counter() - self.t, 2)
        self.p.bar.update(1)


def resolve_model(name: str):
    from edgeth.models import get_model

    return get_model(name)  # an unknown name lists the registered families


def build(out: str | Path, cfg: BuildConfig = BuildConfig(), *, progress: bool = True) -> BuildResult:
    """Run the main job into `out` (see module docstring)."""
    from edgeth.quantize.planning import parse_precision
    from edgeth.targets import get_target, target_names

    out = Path(out)
    family = resolve_model(cfg.model)
    cfg = _sampler_steps(family, cfg, progress)
    precisions = tuple(dict.fromkeys(parse_precision(p) for p in cfg.precisions))
    names = list(cfg.targets) if cfg.targets else target_names()
    for n in names:
        get_target(n)  # unknown names list the targets
    exportable = [n for n in names if get_target(n).available().ok]
    skipped = {f"{n} {p}": get_target(n).available().reason for n in names if n not in exportable for p in precisions}
    if not exportable:
        raise InputError(f"no target can export here ({'; '.join(sorted(set(skipped.values())))})",
                         "install executorch or onnxruntime")
    out.mkdir(parents=True, exist_ok=True)
    steps = (0 if cfg.ckpt else 2) + 2 * len(precisions) + (len(precisions) if cfg.bench else 0) + 1
    bar = _Progress(steps, progress)
    reused: list[str] = []
    try:
        if cfg.ckpt:
            run = Path(cfg.ckpt)
            if not run.is_dir():
                raise InputError(f"checkpoint folder {run} does not exist", "pass the RUN/ folder `edgeth train` wrote")
        else:
            with bar.step("data"):
                data = _data(out, cfg, reused)
            with bar.step("train"):
                run = _train(family, data, out, cfg, reused)
        ckpt_hash = tree_hash(run)
        bundles: dict[str, Path] = {}
        failed: dict[str, str] = {}
        for prec in precisions:
            with bar.step(f"export {prec}"):
                got, fails = _export(run, ckpt_hash, out, prec, exportable, cfg, reused)
                bundles.update(got)
                failed.update(fails)
        results, bench_parts = [], []
        bar.bar.total = bar.bar.n + len(bundles) * (2 if cfg.bench else 1) + 1  # bundles known now
        bar.bar.refresh()
        for key, path in bundles.items():
            with bar.step(f"verify {key}"):
                results += _verify(path, cfg, skipped)
            if cfg.bench:
                with bar.step(f"bench {key}"):
                    bench_parts.append(_bench(path, cfg, bench_parts))
        with bar.step("report"):
            report, summary, bench = _report(out, results, bench_parts, skipped, failed)
    finally:
        bar.close()
    result = BuildResult(out, summary, report, bundles, reused, bar.seconds)
    write_json(out / "summary.json", {"config": asdict(cfg), "summary": summary, "reused": reused,
                                      "seconds": bar.seconds, "bundles": {k: str(v) for k, v in bundles.items()}})
    return result


def _data(out: Path, cfg: BuildConfig, reused: list[str]) -> Path:
    from edgeth.data.synth import generate_corpus

    data = out / "data"
    want = {"clips": cfg.clips, "seconds": cfg.seconds, "size": cfg.size, "seed": cfg.seed}
    stamp = out / "data.build.json"
    if (data / "manifest.json").exists() and _stamp_ok(stamp, {**want, "hash": tree_hash(data)}):
        reused.append("data")
        return data
    generate_corpus(data, clips=cfg.clips, seconds=cfg.seconds, size=cfg.size, seed=cfg.seed, progress=False)
    write_json(stamp, {**want, "hash": tree_hash(data)})
    return data


def _train(family, data: Path, out: Path, cfg: BuildConfig, reused: list[str]) -> Path:
    import torch

    run = out / "run"
    want = {"model": cfg.model, "preset": cfg.preset, "max_steps": cfg.max_steps, "seed": cfg.seed,
            "data": json.loads((out / "data.build.json").read_text())["hash"]}
    stamp = out / "run.build.json"
    if run.is_dir() and _stamp_ok(stamp, {**want, "hash": tree_hash(run)}):
        reused.append("train")
        return run
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    family.train(data, run, preset=cfg.preset, max_steps=cfg.max_steps, device="cpu", seed=cfg.seed,
                 resume=False, progress=False)
    write_json(stamp, {**want, "hash": tree_hash(run)})
    return run


def _export(run: Path, ckpt_hash: str, out: Path, prec: str, targets: list[str], cfg: BuildConfig,
            reused: list[str]) -> tuple[dict[str, Path], dict[str, str]]:
    """{key: bundle path} for this precision, and {"target prec": why} for targets that failed."""
    try:
        return {prec: _export_one(run, ckpt_hash, out / "bundles" / prec, prec, targets, cfg, reused)}, {}
    except EdgethError as e:  # parity (CheckFailed) or a construct/precision a target cannot take
        if len(targets) == 1:
            return {}, {f"{targets[0]} {prec}": _why(e)}
    # one target spoiled the joint bundle: export each alone, keep the ones that pass
    got, fails = {}, {}
    for t in targets:  # find which target failed; keep the others
        try:
            got[f"{prec}-{t}"] = _export_one(run, ckpt_hash, out / "bundles" / f"{prec}-{t}", prec, [t], cfg, reused)
        except EdgethError as e:
            fails[f"{t} {prec}"] = _why(e)
    return got, fails


def _sampler_steps(family, cfg: BuildConfig, progress: bool) -> BuildConfig:
    """`cfg` with `steps` kept only for a family whose pipeline has a `steps` option: the demo's
    default is dropped, with a line, for one without a sampler (VQTalker predicts its tokens in
    R passes); another value asked for such a family is an error."""
    if not cfg.steps or any(o.name == "steps" for o in family.options()):
        return cfg
    if cfg.steps != DEMO_SAMPLER_STEPS:
        raise InputError(f"--steps {cfg.steps}: model {family.name!r} has no sampler steps option",
                         f"drop --steps; its options: {', '.join(o.name for o in family.options()) or '(none)'}")
    if progress:
        print(f"note: {family.name} has no sampler steps; the golden run uses its own schedule", flush=True)
    return replace(cfg, steps=None)


def _why(e: EdgethError) -> str:
    return ("export parity failed: " if isinstance(e, CheckFailed) else "export failed: ") + e.what


def _export_one(run: Path, ckpt_hash: str, path: Path, prec: str, targets: list[str], cfg: BuildConfig,
                reused: list[str]) -> Path:
    from edgeth.bundle.export import export_bundle
    from edgeth.bundle.io import load_bundle
    from edgeth.targets.lowering_cache import cache_dir

    want = {"ckpt": ckpt_hash, "precision": prec, "targets": sorted(targets), "steps": cfg.steps,
            "budget": cfg.budget if prec == "mixed" else None, "seed": cfg.seed, "model": cfg.model,
            **({"quantize_only": sorted(cfg.quantize_only)} if cfg.quantize_only and prec != "fp32" else {}),
            **({"calib_clips": cfg.calib_clips} if cfg.calib_clips and prec != "fp32" else {})}
    stamp = path.with_name(path.name + ".build.json")
    if (path / "manifest.json").exists() and _stamp_ok(stamp, want):
        try:
            load_bundle(path)  # every artifact still hashes as the manifest says
            reused.append(f"export {path.name}")
            return path
        except EdgethError:
            pass
    quantize = {"cache_dir": path.parent.parent / "cache" / "calibration",
                "quantize_only": list(cfg.quantize_only) if cfg.quantize_only else None}
    if prec == "mixed":
        quantize["budget"] = cfg.budget
    if cfg.calib_clips:
        quantize["calib_clips"] = cfg.calib_clips
    # programs pinned to FP32 and mixed plans equal to INT8 are lowered once for the whole build
    lowered = cache_dir() or path.parent.parent / "cache"  # entries under OUT/cache/lowered/
    export_bundle(run, path, model=cfg.model, targets=targets, precision=prec, seed=cfg.seed,
                  options={"steps": cfg.steps} if cfg.steps else None, threads=cfg.threads, progress=False,
                  quantize=quantize, cache=lowered)
    write_json(stamp, want)
    return path


def _verify(path: Path, cfg: BuildConfig, skipped: dict[str, str]) -> list:
    """Run every runnable backend of the bundle; targets that run elsewhere go to `skipped`."""
    from edgeth.bundle.io import load_bundle
    from edgeth.report.collect import run_runnable

    results, elsewhere = run_runnable(load_bundle(path), threads=cfg.threads)
    skipped.update({k: f"exported, not run here: {why}" for k, why in elsewhere.items()})
    return results


def _bench(path: Path, cfg: BuildConfig, earlier: list[dict[str, Any]]) -> dict[str, Any]:
    from edgeth.bench.bundle import bench_bundle

    peak = earlier[0]["machine"]["peak_gflops"] if earlier else None
    # 1.5 s per program and backend at most (`edgeth bench` takes longer): 4 precisions x 3
    # backends x 5 programs of the demo stay ~2 min of its 15 (measured: 3 s cap = 200 s)
    return bench_bundle(path, frames=cfg.frames, iters=cfg.bench_iters, max_seconds=1.5, threads=cfg.threads,
                        peak_gflops=peak, progress=False)


def merge_bench(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """One bench result from several bundles' (eager rows kept once)."""
    if not parts:
        return None
    merged = {**parts[0], "bundle": [p["bundle"] for p in parts], "programs": [], "pipeline": []}
    for i, p in enumerate(parts):
        for key in ("programs", "pipeline"):
            merged[key] += [r for r in p[key] if i == 0 or r["backend"] != "torch"]
    return merged


def _report(out: Path, results: list, bench_parts: list[dict[str, Any]], skipped: dict[str, str],
            failed: dict[str, str]):
    from edgeth.report import render_report
    from edgeth.report.collect import report_data, summary_rows

    bench = merge_bench(bench_parts)
    if bench:
        write_json(out / "bench.json", bench)
    summary = summary_rows(results, bench, skipped, failed)
    data = report_data(results, summary=summary, bench=bench, title=f"edgeth build: {out.name}")
    return render_report(data, out / "report.html"), summary, bench


def summary_table(summary: list[dict[str, Any]]) -> str:
    """The end-of-build table: target x precision, pass/fail and which gate (runtime: device ==
    host; quality: vs FP32 within the budget), worst-frame PSNR, every other
    recorded stage's figure (by its declared kind), speed ratio, size. The worst frame is the
    one the report shows: both come from the same frames check."""
    from edgeth.report import fmt, fmt_bytes
    from edgeth.report.html import stage_note

    head = (f"{'target':<12} {'precision':<10} {'result':<8} {'runtime':<8} {'quality':<8} {'worst PSNR dB':>14} "
            f"{'vs eager':>9} {'size':>10}  stages / note")
    lines = [head, "-" * len(head)]
    for r in summary:
        ratio = r.get("speed_ratio")
        note = r.get("reason") or stage_note(r.get("stages") or {})
        g = r.get("gates") or {}
        lines.append(f"{r['target']:<12} {r['precision']:<10} {r['status']:<8} {g.get('runtime', 'n/a'):<8} "
                     f"{g.get('quality', 'n/a'):<8} {fmt(r.get('worst_psnr_db')):>14} "
                     f"{(f'{ratio:.2f}x' if ratio else 'n/a'):>9} {fmt_bytes(r.get('size_bytes')):>10}  {note[:90]}")
    return "\n".join(lines)


def target_precisions(target: str) -> tuple[str, ...]:
    """Precisions a target's quantizer accepts (Target.precisions)."""
    from edgeth.targets import get_target

    return get_target(target).precisions()


def support_matrix_markdown() -> str:
    """Model x target x precision from the recorded conformance results (edgeth.conformance)."""
    from edgeth.conformance import support_matrix_markdown as from_record

    return from_record()
