"""`edgeth models`"""
from __future__ import annotations

import json

import click


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def cli(as_json: bool):
    """List registered model families and their presets.

    \b
    Example:
      edgeth models --json
    """
    from edgeth.models import get_model, model_names

    rows = [{"name": n, "presets": list(get_model(n).presets), "description": get_model(n).description}
            for n in model_names()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        for r in rows:
            click.echo(f"{r['name']:<10} presets: {', '.join(r['presets'])}" + (f"  {r['description']}" if r["description"] else ""))
