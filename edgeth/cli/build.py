"""`edgeth build`"""
from __future__ import annotations

from pathlib import Path

import click


def _csv(text: str | None) -> tuple[str, ...] | None:
    if text is None or text.strip().lower() == "all":
        return None
    return tuple(x.strip() for x in text.split(",") if x.strip())


@click.command("build")
@click.option("--model", default="ifmdm", show_default=True, help="Model family (see `edgeth models`).")
@click.option("--ckpt", type=click.Path(path_type=Path), default=None,
              help="RUN/ to deploy. Without it: synthesize a corpus and train the preset on the CPU.")
@click.option("--targets", default="all", show_default=True, help="Comma-separated targets, or all.")
@click.option("--precision", "precisions", default=",".join(("fp32", "fp16", "int8", "mixed")), show_default=True,
              help="Comma-separated precisions; one bundle each.")
@click.option("--budget", default="psnr=35", show_default=True, help="Accuracy budget for mixed.")
@click.option("--quantize-only", default=None, metavar="PROGRAMS",
              help="Comma-separated programs that get each precision (mixed: that its search may quantize); the others stay FP32.")
@click.option("--calib-clips", type=click.IntRange(min=1), default=None,
              help="Calibration clips of int8/mixed (default: 4; 2 keeps a `mobile` mixed search to minutes).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder (reused on rerun).")
@click.option("--preset", default="tiny", show_default=True, help="Preset to train without --ckpt.")
@click.option("--clips", type=click.IntRange(min=1), default=8, show_default=True, help="Synthetic clips without --ckpt.")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=4.0, show_default=True, help="Seconds per synthetic clip.")
@click.option("--max-steps", type=click.IntRange(min=0), default=600, show_default=True,
              help="Cap each training stage (0: the preset's full schedule).")
@click.option("--steps", type=click.IntRange(min=0), default=10, show_default=True,
              help="Sampler steps of the golden run every backend replays (0: the model's schedule).")
@click.option("--frames", type=click.IntRange(min=1), default=None, help="End-to-end bench length (default: the golden run).")
@click.option("--bench-iters", type=click.IntRange(min=1), default=10, show_default=True, help="Timed calls per program.")
@click.option("--no-bench", is_flag=True, help="Skip the benchmark step.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Threads for every backend and the eager baseline.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def cli(model, ckpt, targets, precisions, budget, quantize_only, calib_clips, out, preset, clips, seconds, max_steps, steps, frames, bench_iters,
        no_bench, threads, seed, quiet):
    """Data -> train -> calibrate/quantize -> export -> verify -> bench -> report, in one job.

    Ends with a target x precision table and OUT/report.html; exits 1 if any check failed.

    \b
    Example:
      edgeth build --out demo_out
      edgeth build --model ifmdm --ckpt runs/tiny --targets executorch,onnx --precision fp32,int8 --out bundles/
      edgeth build --ckpt runs/mobile --precision fp32,int8,mixed --quantize-only renderer --out rt/
    """
    from edgeth.build import BuildConfig, build, summary_table
    from edgeth.errors import CheckFailed
    from edgeth.io_utils import out_lock

    cfg = BuildConfig(model=model, ckpt=str(ckpt) if ckpt else None, targets=_csv(targets),
                      precisions=_csv(precisions) or ("fp32",), budget=budget, quantize_only=_csv(quantize_only), calib_clips=calib_clips,
                      preset=preset, clips=clips,
                      seconds=seconds, max_steps=max_steps or None, steps=steps or None, frames=frames, bench=not no_bench,
                      bench_iters=bench_iters, threads=threads, seed=seed)
    with out_lock(out):  # one build per --out at a time
        res = build(out, cfg, progress=not quiet)
    click.echo(summary_table(res.summary))
    if res.reused:
        click.echo(f"reused: {', '.join(res.reused)}")
    click.echo(f"report: {res.report}   ({sum(res.seconds.values()):.0f} s)")
    if not res.passed:
        raise CheckFailed("some target x precision failed verification", f"see {res.report}")
    budget = [f"{r['target']} {r['precision']}" for r in res.summary if r["status"] == "budget"]
    if budget:  # runs as the host does; only the quality budget vs FP32 is missed (edgeth verify fails it)
        click.echo(f"note: {', '.join(budget)} miss the quality budget vs FP32 (runtime gate passes, above the "
                   "broken-export floor): the model's quantization error — try --budget for mixed, or a "
                   "longer-trained model; `edgeth verify` fails these as a release gate")
