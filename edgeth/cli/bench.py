"""`edgeth bench`"""
from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("bench")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--backend", "backends", multiple=True,
              help="Backend to measure (repeatable; default: every one that runs here). Eager is always measured.")
@click.option("--frames", type=click.IntRange(min=1), default=None, help="End-to-end length in frames (default: the golden run).")
@click.option("--iters", type=click.IntRange(min=1), default=20, show_default=True, help="Timed calls per program.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Threads for every backend and the eager baseline.")
@click.option("--no-pipeline", is_flag=True, help="Programs only.")
@click.option("--stream-ms", type=float, default=200.0, show_default=True,
              help="Also stream the speech in chunks of this many ms: first-frame latency, RTF, worst gap (0: off).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (for tracking over time).")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, help="Also write the JSON here.")
def cli(bundle, backends, frames, iters, threads, no_pipeline, stream_ms, as_json, output):
    """Latency p50/p90, FPS, peak memory, load time, size and GFLOP/s per backend, as ratios to eager.

    \b
    Example:
      edgeth bench demo_out/bundles/int8 --backend executorch --frames 50 --json
    """
    from edgeth.bench import bench_table_markdown
    from edgeth.bench.bundle import bench_bundle
    from edgeth.io_utils import write_json

    res = bench_bundle(bundle, backends=list(backends) or None, frames=frames, iters=iters, threads=threads,
                       pipeline=not no_pipeline, progress=not as_json, stream_ms=stream_ms or None)
    if output:
        write_json(output, res)
    if as_json:
        click.echo(json.dumps(res, indent=2))
    else:
        from edgeth.bench.stream import stream_table_markdown

        click.echo(bench_table_markdown(res))
        if stream_table_markdown(res):
            click.echo("\nStreaming (speech arriving in real time):\n" + stream_table_markdown(res))
        for b, why in res["skipped"].items():
            click.echo(f"skipped {b}: {why}")
