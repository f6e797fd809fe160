"""`edgeth report`"""
from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("report")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("report.html"), show_default=True)
@click.option("--backend", "backends", multiple=True, help="Backend to include (default: every one that runs here).")
@click.option("--bench", "bench_json", type=click.Path(exists=True, path_type=Path), default=None,
              help="Include a saved `edgeth bench --json` result.")
@click.option("--threads", type=click.IntRange(min=1), default=None)
def cli(bundle, output, backends, bench_json, threads):
    """Write a self-contained HTML parity report (no network needed to view it).

    \b
    Example:
      edgeth report demo_out/bundles/int8 -o int8.html
    """
    from edgeth.bundle.io import load_bundle
    from edgeth.report import render_report
    from edgeth.report.collect import report_data, run_runnable

    b = load_bundle(bundle)
    results, skipped = run_runnable(b, list(backends) or None, threads)
    bench = json.loads(bench_json.read_text()) if bench_json else None
    path = render_report(report_data(results, bench=bench, skipped=skipped, title=f"edgeth report: {bundle}"), output)
    click.echo(f"wrote {path}")
