"""`edgeth debug`: the first-divergence report of one exported program (work lives in edgeth.quantize.debug)."""
from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("debug")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--program", required=True, help="Program to inspect (e.g. renderer).")
@click.option("--target", default="executorch", show_default=True, help="executorch, onnx or tensorrt (run via ONNX Runtime).")
@click.option("--budget", default=None, help="Per-layer floor, e.g. sqnr=25 (default: the precision's 'layer' tolerance).")
@click.option("--call", "call", type=int, default=0, show_default=True, help="Which golden call's inputs to run.")
@click.option("--calib", "calib_dir", type=click.Path(path_type=Path), default=None,
              help="Calibration clips, if the export's calibration set is not cached here.")
@click.option("--limit", type=int, default=None, help="Print only the first N layers.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def cli(bundle, program, target, budget, call, calib_dir, limit, as_json):
    """Each layer's output in the exported program against the FP32 PyTorch layer, in graph order.

    Rebuilds the program exactly as exported (same plan, same calibration), runs it on the
    target's real runtime with every intermediate output exposed, and compares each layer
    with FP32 PyTorch on a golden input (SQNR, cosine, max |diff|). Names the first layer
    whose SQNR falls below the budget. Exit status 1 when one does.

    \b
    Example:
      edgeth debug bundle/ --program renderer --target executorch --budget sqnr=25
    """
    from edgeth.errors import CheckFailed, InputError
    from edgeth.quantize.debug import debug_bundle

    budget_db = None
    if budget is not None:
        k, _, v = budget.partition("=")
        try:
            budget_db = float(v)
        except ValueError:
            budget_db = None
        if k.strip().lower() != "sqnr" or budget_db is None:
            raise InputError(f"bad --budget {budget!r}", "use sqnr=<dB>, e.g. sqnr=25")
    rep = debug_bundle(bundle, program, target=target, budget_db=budget_db, call=call, calib_dir=calib_dir)
    if as_json:
        click.echo(json.dumps(rep.to_json(), indent=2))
    else:
        click.echo(f"{rep.program} on {rep.target} ({rep.precision}), {len(rep.rows)} layers, "
                   f"budget SQNR >= {rep.budget_db:g} dB")
        click.echo(rep.table(limit))
        if rep.unobserved:
            click.echo(f"not observable on this backend: {', '.join(rep.unobserved)}")
        for n in rep.notes:
            click.echo(f"note: {n}")
    first = rep.first
    if first is not None:
        raise CheckFailed(f"first divergence at layer {first.index}: {first.op} in {first.module or '<root>'} "
                          f"(node {first.node}), SQNR {first.sqnr_db:.1f} dB < {rep.budget_db:g} dB",
                          "keep that layer in float (--precision mixed does it under a budget)")
    if not as_json:
        click.echo("no layer below the budget")
