"""`edgeth generate`: portrait + speech -> talking-head mp4 with the PyTorch reference."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("generate")
@click.option("--ckpt", required=True, type=click.Path(path_type=Path), help="RUN/ directory from `edgeth train`.")
@click.option("--image", "image", required=True, type=click.Path(path_type=Path), help="Portrait (any size; resized).")
@click.option("--audio", "audio", required=True, type=click.Path(path_type=Path), help="Speech (any wav; resampled to 16 kHz).")
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Output .mp4 (audio muxed in).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="DDIM steps (default from the run; paper: 50-1000).")
@click.option("--guidance", type=click.FloatRange(min=0.0), default=None, help="Classifier-free guidance scale (default from the run).")
@click.option("--motion-std", type=click.FloatRange(min=0.0), default=None,
              help="Motion degree m^sigma (RMS of the motion code around its mean; default: the training median).")
@click.option("--motion-mean", "motion_mean_mode", type=click.Choice(["stable", "evolving", "mix"]), default=None,
              help="m^mu from the portrait (stable), the previous window's last frame (evolving), or a blend.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu | cuda")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def cli(ckpt: Path, image: Path, audio: Path, out: Path, steps, guidance, motion_std, motion_mean_mode, seed: int,
        device: str, quiet: bool):
    """Generate a talking-head video from a portrait and speech with a trained run.

    \b
    Example:
      edgeth generate --ckpt runs/tiny --image portrait.png --audio speech.wav -o out.mp4
      edgeth generate --ckpt runs/tiny --image me.jpg --audio talk.wav -o out.mp4 --steps 50 --guidance 2.0 --motion-std 0.5 --seed 0
    """
    import time

    from edgeth.generate import generate

    t0 = time.perf_counter()
    res = generate(ckpt, image, audio, out, seed=seed, device=device, progress=not quiet, steps=steps,
                   guidance=guidance, motion_std=motion_std, motion_mean_mode=motion_mean_mode)
    dt = time.perf_counter() - t0
    n = len(res.frames)
    click.echo(f"wrote {out}: {n} frames at {res.fps} fps ({n / res.fps:.2f} s) in {dt:.1f} s "
               f"[steps={res.extras.get('steps')}, guidance={res.extras.get('guidance')}, "
               f"motion_std={res.extras.get('motion_std'):.3g}]")
