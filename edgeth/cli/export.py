"""`edgeth export`: a checkpoint -> a verified bundle (work lives in edgeth.bundle.export)."""
from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("export")
@click.option("--ckpt", "ckpt", required=True, type=click.Path(path_type=Path), help="RUN/ folder written by `edgeth train`.")
@click.option("--model", default=None, help="Model family (default: read from RUN's config).")
@click.option("--target", "targets", default=None, help="Comma-separated targets (default: every one available here).")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Bundle folder to write.")
@click.option("--precision", default="fp32", show_default=True,
              help="fp32|fp16|int8|int8-weights|mixed for every target, or per target: executorch=int8,onnx=fp16.")
@click.option("--budget", default=None, help="Accuracy budget for --precision mixed: psnr=35 | cosine=0.999 | tokens=0.99.")
@click.option("--quantize-only", default=None, metavar="PROGRAMS",
              help="Comma-separated programs that get --precision (mixed: that the search may quantize); the others stay FP32.")
@click.option("--calib", "calib_dir", type=click.Path(path_type=Path), default=None,
              help="Calibration clips: <name>.png + <name>.wav pairs (default: synthetic clips).")
@click.option("--calib-clips", type=click.IntRange(min=1), default=4, show_default=True, help="Calibration clips to run the reference on.")
@click.option("--image", type=click.Path(path_type=Path), default=None, help="Portrait for the golden run (default: synthetic).")
@click.option("--audio", type=click.Path(path_type=Path), default=None, help="Speech for the golden run (default: synthetic).")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=None, help="Length of the synthetic golden input (default: one window).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampler noise stored as golden.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Sampler steps of the golden run (default: the model's schedule).")
@click.option("--golden-calls", type=click.IntRange(min=1), default=8, show_default=True, help="Calls recorded per program.")
@click.option("--tar", "tar", is_flag=True, help="Also write BUNDLE.tar next to the folder.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Runtime threads for the export-time parity check.")
@click.option("--cache", "cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="EDGETH_EXPORT_CACHE", show_envvar=True,
              help="Reuse lowered programs kept in this folder (a graph lowered before is not lowered again).")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def cli(ckpt, model, targets, out, precision, budget, quantize_only, calib_dir, calib_clips, image, audio, seconds, seed, steps,
        golden_calls, tar, threads, cache, as_json, quiet):
    """Export a checkpoint into a bundle for one or more targets, verified against PyTorch.

    Loads the run, builds its programs, preflights them per target, runs the PyTorch
    reference pipeline on a sample input to capture golden vectors, exports every program,
    checks each exported program against the golden vectors (FP32 parity must hold or the
    export fails and nothing is written), writes manifest.json and renames the bundle into
    place.

    Quantized precisions calibrate on the reference pipeline's real inputs (--calib clips or
    synthetic ones, cached per checkpoint); mixed keeps the fewest layers in float that meet
    --budget on the generated video.

    \b
    Examples:
      edgeth export --ckpt runs/tiny --target executorch,onnx --out bundle/ --tar
      edgeth export --ckpt runs/tiny --target executorch --precision mixed --budget psnr=35 --out b8/
      edgeth export --ckpt runs/tiny --precision int8 --cache ~/.cache/edgeth/lowered --out b8/
      edgeth export --ckpt runs/mobile --target executorch --precision mixed --quantize-only renderer --out b8/
    """
    from edgeth.bundle.export import export_bundle
    from edgeth.errors import InputError
    from edgeth.io_utils import out_lock

    if (image is None) != (audio is None):
        raise InputError("--image and --audio go together", "pass both, or neither for a synthetic sample")
    img = aud = None
    if image is not None:
        img, aud = _read_inputs(ckpt, model, image, audio)
    names = [t.strip() for t in targets.split(",") if t.strip()] if targets else None
    with out_lock(out):  # a second export into the same --out fails at once instead of mixing bundles
        res = export_bundle(ckpt, out, model=model, targets=names, precision=precision, image=img, audio=aud,
                            seed=seed, seconds=seconds, options={"steps": steps} if steps else None,
                            golden_calls=golden_calls, tar=tar, threads=threads, cache=cache,
                            progress=not quiet and not as_json,
                            quantize={"budget": budget, "calib_dir": calib_dir, "calib_clips": calib_clips,
                                      "quantize_only": quantize_only.split(",") if quantize_only else None})
    if as_json:
        click.echo(json.dumps({"bundle": str(res.path), "tar": str(res.tar) if res.tar else None,
                               "targets": sorted(res.manifest["targets"]), "seconds": res.seconds,
                               "checks": [c.to_json() for c in res.checks]}, indent=2))
        return
    m = res.manifest
    click.echo(f"bundle {res.path}  ({m['model']['family']}, checkpoint {m['model']['checkpoint_sha256'][:12]})")
    for p in m["programs"]:
        for tg, art in sorted(p["artifacts"].items()):
            size = sum(_size(res.path / tg / f) for f in art["files"])
            click.echo(f"  {tg:<11} {p['name']:<20} {art['precision']:<5} {size / 1e6:7.2f} MB  {', '.join(art['files'])}")
    for c in res.checks:
        click.echo(f"  parity {c.name:<48} {c.worst}")
    for prec, q in (m.get("quantization") or {}).items():
        mixed = q.get("mixed")
        if mixed:
            fl = {k: v for k, v in mixed["float_layers"].items() if v}
            click.echo(f"  mixed  budget {mixed['budget']}: full INT8 {mixed['full_int8']}, plan {mixed['achieved']}"
                       f" (simulated); float layers {fl or 'none'}")
    if res.tar:
        click.echo(f"tar    {res.tar}")
    click.echo("time   " + ", ".join(f"{k} {v:.1f}s" for k, v in res.seconds.items()))


def _size(p: Path) -> int:
    from edgeth.targets.common import path_size

    return path_size(p) if p.exists() else 0


def _read_inputs(ckpt: Path, model, image: Path, audio: Path):
    from edgeth.bundle.reference import resolve_family
    from edgeth.data.video import read_audio, read_image

    family = resolve_family(ckpt, model)
    spec = family.pipeline(family.load(ckpt))
    return (read_image(image, size=spec.image_size),
            read_audio(audio, sample_rate=spec.audio.get("sample_rate", 16000)))
