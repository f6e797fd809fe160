"""Quantization benchmark: speed, size and parity of every precision, side by side, in one run.

Per program and end to end (the whole talking-head pipeline on one clip), for each target
and precision: latency as a ratio to PyTorch eager FP32 and to the same backend in FP32,
artifact size ratio, and parity against the FP32 reference (per program: PSNR for images,
cosine otherwise; end to end: one figure per stage the family's PipelineSpec declares —
worst-frame and mean PSNR and min SSIM of the frames, worst per-frame cosine of continuous
stages, agreement of discrete ones; runtime_py.parity.stage_quality). Printed, not asserted.

  python benchmarks/quantize.py --preset mobile --programs renderer --targets executorch \\
      --precisions fp32,int8,mixed --budget frames:psnr=35 --json bench_quant.json

Weights: --ckpt RUN (a trained run), else a fresh run of --preset with random weights (the
layers an untrained run zero-initialises get small random weights, so no program is a
constant); random weights exaggerate INT8 damage.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def build(args):
    import torch

    from edgeth.models import get_model

    fam = get_model(args.model)
    if args.ckpt:
        run = fam.load(Path(args.ckpt))
    else:
        run = fam.fresh(args.preset, seed=args.seed)
        torch.manual_seed(args.seed)
        with torch.no_grad():
            for prm in run.model.parameters():
                if prm.dim() >= 2 and not prm.any():
                    prm.normal_(0.0, 0.02)
    return fam.programs(run), fam.pipeline(run)


def median_time(fn, repeat: int) -> float:
    """Median wall time (s) of `repeat` calls after one warm-up (edgeth.bench's timer)."""
    from edgeth.bench import time_calls

    return statistics.median(time_calls(fn, warmup=1, iters=repeat, max_seconds=float("inf"), min_iters=repeat))


def output_parity(kind: str, ref, got) -> dict:
    from edgeth.runtime_py import parity

    if kind == "image":
        return {"psnr_db": parity.psnr_db(ref, got), "ssim": parity.ssim(ref, got)}
    return {"cosine": parity.cosine(ref, got), "sqnr_db": parity.sqnr_db(ref, got)}


def make_plans(args, programs, spec, calib, clip, progress):
    from edgeth.quantize.budget import Budget
    from edgeth.quantize.mixed import search_mixed
    from edgeth.quantize.plan import PrecisionPlan
    from edgeth.quantize.planning import backend_quality, fixed_plan
    from edgeth.runtime_py.pipelines import SeededNoise, get_pipeline

    drive = get_pipeline(spec.kind)
    plans, mixed = {}, None
    for prec in args.precisions:
        if prec == "fp32":
            plans[prec] = {p.name: PrecisionPlan("fp32") for p in programs}
        elif prec != "mixed":
            plans[prec] = {p.name: fixed_plan(p) or PrecisionPlan(prec, calibration=calib.for_program(p.name, 32))
                           for p in programs}
        else:
            b = Budget.parse(args.budget, spec)

            def run(call):
                res = drive(spec, call, image=clip[0], audio=clip[1], noise=SeededNoise(0), **args.opts)
                return b.output(res)

            from edgeth.quantize.calibrate import torch_call

            ref = run(torch_call(programs))
            verify = None
            if "executorch" in args.targets:
                def verify(pl):
                    return backend_quality(programs, pl, "executorch", run, b, ref, args.threads)
            res = search_mixed(programs, calib, run, b, quantize=args.mixed_programs, threads=args.threads,
                               verify=verify, progress=progress)
            plans[prec] = res.plans
            mixed = res.to_json()
    return plans, mixed


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ifmdm")
    ap.add_argument("--preset", default="mobile")
    ap.add_argument("--ckpt", default=None, help="a trained RUN/ (default: random weights)")
    ap.add_argument("--programs", default="all", help="programs exported per precision (others run FP32 eager)")
    ap.add_argument("--targets", default="executorch,onnx")
    ap.add_argument("--precisions", default="fp32,fp16,int8,int8-weights,mixed")
    ap.add_argument("--budget", default="frames:psnr=35")
    ap.add_argument("--mixed-programs", default=None, help="programs the mixed search quantizes (default: --programs)")
    ap.add_argument("--calib-clips", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--opt", action="append", default=["steps=10"], metavar="NAME=VALUE",
                    help="pipeline option of the family (default steps=10 for the diffusion families)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    args.targets = [t for t in args.targets.split(",") if t]
    args.precisions = [p for p in args.precisions.split(",") if p]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)

    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("torchao", "coremltools", "nncf", "executorch", "root"):
        logging.getLogger(None if name == "root" else name).setLevel(logging.ERROR)
    import torch

    from edgeth.quantize.calibrate import cached_capture
    from edgeth.quantize.planning import calibration_clips
    from edgeth.runtime_py.pipelines import SeededNoise, get_pipeline
    from edgeth.runtime_py.torch_backend import torch_call
    torch.set_num_threads(args.threads)
    t0 = time.time()
    programs, spec = build(args)
    given = dict(o.partition("=")[::2] for o in args.opt)  # the default steps=10 applies where declared
    declared = {o.name for o in spec.options}
    args.opts = spec.parse_options({k: v for k, v in given.items() if k in declared or not declared})
    names = [p.name for p in programs] if args.programs == "all" else args.programs.split(",")
    args.mixed_programs = args.mixed_programs.split(",") if args.mixed_programs else names
    chosen = [p for p in programs if p.name in names]
    cl = calibration_clips(spec, None, args.calib_clips, args.seed, args.seconds)
    calib = cached_capture(Path.home() / ".cache" / "edgeth" / "calibration", programs, spec, cl, progress=not args.quiet,
                           **args.opts)
    log = {"setup_s": round(time.time() - t0, 1), "calibration": calib.summary()}

    plans, mixed = make_plans(args, programs, spec, calib, cl[0], not args.quiet)
    log["mixed"] = mixed
    drive = get_pipeline(spec.kind)
    eager = torch_call(programs, threads=args.threads)

    def pipeline(call):
        return drive(spec, call, image=cl[0][0], audio=cl[0][1], noise=SeededNoise(0), **args.opts)

    ref = pipeline(eager)
    inputs = {p.name: calib.for_program(p.name, 3) for p in chosen}
    base = {p.name: median_time(lambda p=p: eager(p.name, list(inputs[p.name][0])), args.repeat) for p in chosen}
    base_e2e = median_time(lambda: pipeline(eager), max(1, args.repeat // 3))
    rows: list = []
    measure_targets(args, chosen, plans, eager, inputs, base, base_e2e, pipeline, ref, spec, rows)
    log.update(rows=rows, eager_ms={k: round(v * 1e3, 2) for k, v in base.items()}, eager_e2e_ms=round(base_e2e * 1e3, 1),
               preset=args.preset, weights=args.ckpt or "random", threads=args.threads, options=args.opts,
               total_s=round(time.time() - t0, 1))
    print_table(log)
    if args.json:
        Path(args.json).write_text(json.dumps(log, indent=2, default=str) + "\n")
    return 0


def measure_targets(args, chosen, plans, eager, inputs, base, base_e2e, pipeline, ref, spec, rows) -> None:
    """Rows per target x precision: each chosen program, then the whole pipeline."""
    from edgeth.runtime_py.parity import stage_quality
    from edgeth.targets import get_target
    from edgeth.targets.common import path_size, runner_entry

    fp32_backend: dict = {}
    for target in args.targets:
        tgt = get_target(target)
        if not (tgt.available().ok and tgt.runtime_available().ok):
            print(f"skip {target}: {tgt.available().reason or tgt.runtime_available().reason}", file=sys.stderr)
            continue
        for prec in args.precisions:
            with tempfile.TemporaryDirectory(prefix="edgeth-benchq-") as td:
                runners, sizes = {}, {}
                try:
                    for p in chosen:
                        art = tgt.export(p, plans[prec][p.name], Path(td))
                        sizes[p.name] = sum(path_size(Path(td) / f) for f in art.files if (Path(td) / f).exists())
                        runners[p.name] = tgt.runner(Path(td), runner_entry(p, art), args.threads)
                except Exception as e:  # an unsupported combination is a row, not a crash
                    rows.append({"target": target, "precision": prec, "error": str(e).splitlines()[0][:160]})
                    continue

                def call(name, xs):
                    return list(runners[name](*xs)) if name in runners else eager(name, xs)

                for p in chosen:
                    x = list(inputs[p.name][0])
                    sec = median_time(lambda p=p, x=x: runners[p.name](*x), args.repeat)
                    if prec == "fp32":
                        fp32_backend[(target, p.name)] = (sec, sizes[p.name])
                    got = runners[p.name](*x)[0]
                    want = eager(p.name, x)[0]
                    fb = fp32_backend.get((target, p.name))
                    rows.append({"target": target, "precision": prec, "program": p.name,
                                 "ms": round(sec * 1e3, 2), "x_eager_fp32": round(base[p.name] / sec, 2),
                                 "x_backend_fp32": round(fb[0] / sec, 2) if fb else None,
                                 "size_mb": round(sizes[p.name] / 1e6, 2),
                                 "size_vs_fp32": round(sizes[p.name] / fb[1], 3) if fb else None,
                                 **{k: round(v, 4) for k, v in output_parity(p.outputs[0].kind, want, got).items()}})
                sec = median_time(lambda: pipeline(call), max(1, args.repeat // 3))
                got = pipeline(call)
                fb = fp32_backend.get((target, "__e2e__"))
                if prec == "fp32":
                    fp32_backend[(target, "__e2e__")] = (sec, 0)
                rows.append({"target": target, "precision": prec, "program": "end-to-end", "ms": round(sec * 1e3, 1),
                             "x_eager_fp32": round(base_e2e / sec, 2), "x_backend_fp32": round(fb[0] / sec, 2) if fb else None,
                             **{k: round(v, 4) for k, v in stage_quality(spec, ref, got).items()}})


def print_table(log) -> None:
    rows = log["rows"]
    stage_cols = [k for r in rows for k in r if " " in k]
    cols = ("target", "precision", "program", "ms", "x_eager_fp32", "x_backend_fp32", "size_mb", "size_vs_fp32",
            "psnr_db", "ssim", "cosine", *dict.fromkeys(stage_cols))
    print(f"eager FP32 ms: {log['eager_ms']}, end-to-end {log['eager_e2e_ms']} ms "
          f"({log['preset']}, {log['weights']} weights, {log['threads']} threads, options {log['options']})")
    print("  ".join(f"{c:>12}" for c in cols))
    for r in rows:
        if "error" in r:
            print(f"{r['target']:>12}  {r['precision']:>12}  error: {r['error']}")
            continue
        print("  ".join(f"{str(r.get(c, '')):>12}" for c in cols))
    m = log.get("mixed")
    if m:
        print(f"mixed: budget {m['budget']}, full INT8 {m['full_int8']}, plan {m['achieved']} (simulated), "
              f"verified {m['verified']}, float layers {m['float_layers']}, {m['seconds']} s")


if __name__ == "__main__":
    sys.exit(main())
