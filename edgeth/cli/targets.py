"""`edgeth targets`: every registered export target, whether it exports and runs here, and why not."""
from __future__ import annotations

import json

import click


def target_rows() -> list[dict]:
    """One row per target: name, artifact suffix, export/runtime availability with reasons."""
    from edgeth.runtime_py.backends import BACKENDS, SIMULATORS, backend_label
    from edgeth.targets import get_target, target_names

    rows = []
    for name in target_names():
        t = get_target(name)
        exp, run = t.available(), t.runtime_available()
        sims = [b for b in SIMULATORS if BACKENDS[b] == name]
        rows.append({"name": name, "artifact": getattr(t, "artifact_layout", t.file_suffix), "export": exp.ok, "export_reason": exp.reason,
                     "runtime": run.ok, "runtime_reason": run.reason,
                     "simulators": [{"backend": b, "label": backend_label(b), "runs": exp.ok} for b in sims]})
    return rows


@click.command("targets")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def cli(as_json: bool):
    """List export targets, whether each can export and run here, and why not.

    \b
    Example:
      edgeth targets
      edgeth targets --json
    """
    rows = target_rows()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'target':<11} {'artifact':<13} {'export':<7} {'runtime':<8} notes")
    for r in rows:
        sims = [f"backend {s['label']} {'runs' if s['runs'] else 'cannot run'} here" for s in r["simulators"]]
        notes = "; ".join(x for x in (r["export_reason"], r["runtime_reason"], *sims) if x)
        click.echo(f"{r['name']:<11} {r['artifact']:<13} {'yes' if r['export'] else 'no':<7} "
                   f"{'yes' if r['runtime'] else 'no':<8} {notes}")
