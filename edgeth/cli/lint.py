"""`edgeth lint`: check a bundle's artifacts against a target's rules before they reach a device."""
from __future__ import annotations

import json
from pathlib import Path

import click

LINTERS = {"tensorrt": "edgeth.targets.tensorrt.lint"}  # target -> module with lint_bundle(bundle, version)


@click.command("lint")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--target", "target", default="tensorrt", show_default=True, help="Target whose rules apply.")
@click.option("--trt-version", default=None, help="TensorRT release whose ONNX parser to check against (8.6, 10.x).")
@click.option("--json", "as_json", is_flag=True, help="Findings as JSON.")
def cli(bundle, target, trt_version, as_json):
    """Check every program of a bundle against TensorRT's ONNX parser support, QDQ rules,
    optimization profiles, INT64 narrowing, 5-D GridSample and Conv3d. Exit 1 on any error.

    \b
    Example:
      edgeth lint bundle/ --target tensorrt --trt-version 8.6
    """
    import importlib

    from edgeth.errors import CheckFailed, InputError

    if target not in LINTERS:
        raise InputError(f"no linter for target {target!r}", f"lint targets: {', '.join(LINTERS)}")
    found = importlib.import_module(LINTERS[target]).lint_bundle(bundle, trt_version)
    if as_json:
        click.echo(json.dumps({p: [f.to_json() for f in fs] for p, fs in found.items()}, indent=2))
    else:
        for program, findings in found.items():
            click.echo(f"{program}: {len(findings)} finding(s)" if findings else f"{program}: clean")
            for f in findings:
                click.echo("  " + f.line())
    errors = sum(f.severity == "error" for fs in found.values() for f in fs)
    if errors:
        raise CheckFailed(f"{errors} lint error(s) in {bundle}", "fix the model or the export, then re-export")
