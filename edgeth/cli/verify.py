"""`edgeth verify`: a bundle against its golden vectors, on backends here or from device dumps."""
from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("verify")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--backend", "backends", default=None,
              help="Comma-separated backends: torch, executorch, onnxruntime, coreml, tensorrt "
                   "(default: every backend this bundle can run here).")
@click.option("--outputs", type=click.Path(path_type=Path), default=None,
              help="Folder of outputs an app dumped on a device (see below); compares them instead of running.")
@click.option("--target", default=None, help="With --outputs: whose tolerances apply (default: the bundle's only target).")
@click.option("--programs-only", is_flag=True, help="Skip the whole-pipeline replay.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Runtime threads.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--junit", type=click.Path(path_type=Path), default=None, help="Also write a JUnit XML report.")
def cli(bundle, backends, outputs, target, programs_only, threads, as_json, junit):
    """Check a bundle (or outputs dumped on a device) against its golden vectors.

    Runs every golden call of every program and replays the whole pipeline with the golden
    input and recorded noise (per-frame PSNR/SSIM against the PyTorch reference), judged by
    the tolerances in the manifest. Exit 0 only when every check passes, 1 when one fails,
    2 for bad input.

    \b
    Device outputs (--outputs DIR), per program, either layout:
      DIR/<program>.npz            keys out_<name> stacked over the golden calls,
                                   or out_<name>_<call> per call
      DIR/<program>/<call>/<name>.npy
    and optionally DIR/pipeline.npz (key frames, stages such as motion).
    Call i uses the inputs in_<name>[i] of BUNDLE/golden/<program>.npz.

    \b
    Example:
      edgeth verify bundle/ --backend executorch --junit verify.xml
      edgeth verify bundle/ --outputs dumps/ --json
    """
    from edgeth.bundle.io import load_bundle
    from edgeth.errors import InputError
    from edgeth.runtime_py.verify import reports_json, write_junit

    b = load_bundle(bundle)
    reports = []
    if outputs is not None:
        if backends:
            raise InputError("--outputs compares dumps; it does not run a backend", "drop --backend or --outputs")
        from edgeth.runtime_py.device_outputs import verify_outputs

        reports.append(verify_outputs(b, outputs, target))
    else:
        from edgeth.runtime_py.verify import verify_bundle

        for name in _backends(b, backends):
            reports.append(verify_bundle(b, name, threads=threads, pipeline=not programs_only, progress=not as_json))
    if junit:
        write_junit(reports, junit)
    if as_json:
        click.echo(json.dumps({"bundle": str(bundle), **reports_json(reports)}, indent=2))
    else:
        for r in reports:
            click.echo(f"== {r.backend}")
            click.echo("\n".join(r.lines()))
    if not all(r.passed for r in reports):
        from edgeth.errors import CheckFailed

        failed = [f"{c.name} ({c.worst})" for r in reports for c in r.failures]
        raise CheckFailed(f"{len(failed)} check(s) failed: {'; '.join(failed[:4])}" + (" …" if len(failed) > 4 else ""),
                          "see the report above" + (f" and {junit}" if junit else ""))


def _backends(bundle, names: str | None) -> list[str]:
    from edgeth.runtime_py.backends import available_backends, require_backend

    if names:
        out = [n.strip() for n in names.split(",") if n.strip()]
        for n in out:
            require_backend(bundle, n)  # unknown / unavailable: error listing the available ones
        return out
    avail = available_backends(bundle)
    ported = [n for n, a in avail.items() if a.ok and n != "torch"]
    return ported or ["torch"]
