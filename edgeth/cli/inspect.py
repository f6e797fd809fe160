"""`edgeth inspect`: a bundle's manifest, human-readable."""
from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("inspect")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.option("--no-verify", is_flag=True, help="Skip checking file hashes (faster on big bundles).")
def cli(bundle, as_json, no_verify):
    """Print a bundle's manifest: programs, shapes, precisions, delegated/fallback ops,
    pipeline, tolerances and tool versions.

    \b
    Example:
      edgeth inspect bundle/
      edgeth inspect bundle.tar --json
    """
    from edgeth.bundle.inspect import describe
    from edgeth.bundle.io import load_bundle

    b = load_bundle(bundle, verify_hashes=not no_verify)
    if as_json:
        click.echo(json.dumps(b.manifest, indent=2, sort_keys=True))
    else:
        click.echo("\n".join(describe(b)))
