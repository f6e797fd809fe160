"""`edgeth data synth|inspect|probe`"""
from __future__ import annotations

import json

import click


@click.group("data")
def cli():
    """Generate the synthetic corpus or inspect a folder of clips.

    \b
    Examples:
      edgeth data synth data/ --clips 16 --seconds 4 --size 128
      edgeth data inspect data/ --json
      edgeth data probe out.mp4 --gt data/clip_0000.json
    """


@cli.command("synth")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--clips", type=click.IntRange(min=1), default=16, show_default=True, help="Number of clips (two per identity).")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=4.0, show_default=True, help="Length of each clip.")
@click.option("--size", type=click.IntRange(min=16), default=128, show_default=True, help="Frame size in pixels (square).")
@click.option("--seed", default=0, show_default=True, help="Same seed, same corpus.")
@click.option("--lossless", is_flag=True, help="Also write frames as .npz (bit-exact, besides the mp4).")
@click.option("--val-fraction", type=click.FloatRange(0.0, 1.0), default=0.25, show_default=True, help="Share of identities held out for val.")
def synth(out, clips, seconds, size, seed, lossless, val_fraction):
    """Write a procedural synthetic talking-head corpus (mp4 + wav + per-frame ground truth).

    \b
    Example:
      edgeth data synth data/ --clips 16 --seconds 4 --size 128 --seed 0
    """
    from edgeth.data.synth import generate_corpus

    m = generate_corpus(out, clips=clips, seconds=seconds, size=size, seed=seed, lossless=lossless,
                        val_fraction=val_fraction, progress=True)
    n_tr = sum(e["split"] == "train" for e in m["clips"])
    click.echo(f"wrote {len(m['clips'])} clips to {out} ({n_tr} train / {len(m['clips']) - n_tr} val, "
               f"{len(m['splits']['val'])} held-out identities), {size}x{size} @ {m['fps']} fps, {seconds:g} s each")


@cli.command("inspect")
@click.argument("root", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--strict", is_flag=True, help="Exit 2 when any clip has a problem.")
def inspect(root, as_json, strict):
    """Print clip count, duration, fps, resolution, audio rate and problems found.

    \b
    Example:
      edgeth data inspect my_clips/ --json
    """
    from edgeth.data.real import inspect_folder
    from edgeth.errors import InputError

    r = inspect_folder(root)
    if as_json:
        click.echo(json.dumps(r, indent=2))
    else:
        click.echo(f"{r['root']}: {r['clips']} clips ({r['kind']}), {r['usable']} usable, {r['seconds_total']} s total"
                   f" ({r['seconds_min']}–{r['seconds_max']} s each)")
        click.echo(f"  fps: {r['fps']}  resolution: {', '.join(r['resolutions']) or '-'}  audio: {r['audio_rates']} Hz")
        if r["splits"]:
            click.echo(f"  identities per split: {r['splits']}")
        for p in r["problems"]:
            click.echo(f"  problem: {p}")
    if strict and r["problems"]:
        raise InputError(f"{len(r['problems'])} problem(s) in {root}, first: {r['problems'][0]}",
                         "fix or remove the listed files, or drop --strict")


@cli.command("probe")
@click.argument("video", type=click.Path())
@click.option("--gt", "gt_path", type=click.Path(), help="Ground truth to score against (a clip_XXXX.json of data synth).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def probe(video, gt_path, as_json):
    """Measure mouth, blink and head pose in a video with the motion probe; with --gt, the lip-sync score.

    \b
    Example:
      edgeth data probe data/clip_0000.mp4 --gt data/clip_0000.json
    """
    from pathlib import Path

    from edgeth.data import probe as motion_probe
    from edgeth.data.video import read_video
    from edgeth.errors import InputError

    frames, fps = read_video(video)
    m = motion_probe.measure(frames)
    r = {"video": str(video), "frames": int(len(frames)), "fps": fps,
         "mean": {k: round(float(v.mean()), 4) for k, v in m.items()},
         "std": {k: round(float(v.std()), 4) for k, v in m.items()}}
    if gt_path:
        try:
            gt = json.loads(Path(gt_path).read_text())["gt"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"cannot read ground truth {gt_path} ({type(e).__name__})",
                             "pass the clip_XXXX.json written by `edgeth data synth`") from None
        n = min(len(frames), *(len(v) for v in gt.values()))
        r["correlation"] = {k: round(motion_probe.pearson(m[k][:n], gt[k][:n]), 4) for k in m if k in gt}
        r["lip_sync"] = r["correlation"].get("mouth_open")
    if as_json:
        click.echo(json.dumps(r, indent=2))
        return
    click.echo(f"{video}: {r['frames']} frames @ {fps:g} fps")
    for k in m:
        corr = f"  r={r['correlation'][k]:+.3f}" if "correlation" in r and k in r["correlation"] else ""
        click.echo(f"  {k:<12} mean {r['mean'][k]:8.3f}  std {r['std'][k]:7.3f}{corr}")
    if "lip_sync" in r:
        click.echo(f"lip-sync score (probe mouth opening vs ground truth, Pearson r): {r['lip_sync']:.3f}")
