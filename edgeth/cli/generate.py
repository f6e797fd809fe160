"""`edgeth generate`: portrait + speech -> talking-head mp4 with the PyTorch reference."""
from __future__ import annotations

from pathlib import Path

import click

from edgeth.cli.face_options import crop_mode, face_options, summary
from edgeth.cli.options import FamilyOptionsCommand, opt_option, video_quality_option



@click.command("generate", cls=FamilyOptionsCommand)
@click.option("--ckpt", required=True, type=click.Path(path_type=Path), help="RUN/ directory from `edgeth train`.")
@click.option("--image", "image", required=True, type=click.Path(path_type=Path), help="Portrait photo (any size; the face is detected and cropped).")
@click.option("--audio", "audio", default=None, type=click.Path(path_type=Path), help="Speech (any wav; resampled to 16 kHz).")
@click.option("--driving", default=None, type=click.Path(path_type=Path),
              help="Instead of --audio: a clip whose facial motion drives the portrait (families with a video mode).")
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Output .mp4 (audio muxed in).")
@opt_option
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Shorthand for --opt steps=N (diffusion families).")
@click.option("--guidance", type=click.FloatRange(min=0.0), default=None, help="Shorthand for --opt guidance=G.")
@click.option("--motion-std", type=click.FloatRange(min=0.0), default=None, help="Shorthand for --opt motion_std=S (IF-MDM).")
@click.option("--motion-mean", "motion_mean_mode", default=None, help="Shorthand for --opt motion_mean_mode=M (IF-MDM).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu | cuda")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@face_options
@video_quality_option
def cli(ckpt: Path, image: Path, audio: Path | None, driving: Path | None, out: Path, opts, steps, guidance,
        motion_std, motion_mean_mode, seed: int, device: str, quiet: bool, crop_box, no_crop: bool, no_paste: bool,
        as_json: bool, video_quality: str):
    """Generate a talking-head video from a portrait and speech with a trained run.

    \b
    Example:
      edgeth generate --ckpt runs/tiny --image portrait.png --audio speech.wav -o out.mp4
      edgeth generate --ckpt runs/tiny --image me.jpg --audio talk.wav -o out.mp4 --opt steps=50 --opt motion_std=0.5
    """
    import time

    from edgeth.cli.options import format_summary, parse_opts
    from edgeth.generate import generate

    if (audio is None) == (driving is None):
        raise click.UsageError("pass exactly one of --audio and --driving")
    if driving is not None:
        from edgeth.generate import drive_video

        n = len(drive_video(ckpt, image, driving, out)["frames"])
        click.echo(f"wrote {out}: {n} frames driven by {driving}")
        return
    options = parse_opts(opts, steps=steps, guidance=guidance, motion_std=motion_std,
                         motion_mean_mode=motion_mean_mode)
    t0 = time.perf_counter()
    res, spec = generate(ckpt, image, audio, out, seed=seed, device=device, progress=not (quiet or as_json),
                         return_spec=True, crop=crop_mode(crop_box, no_crop), paste=not no_paste,
                         video_quality=video_quality, **options)
    dt = time.perf_counter() - t0
    n = len(res.frames)
    if as_json:
        click.echo(summary(out, n, res.fps, dt, res.extras["crop"], not no_paste,
                           **{o.name: res.extras.get(o.name) for o in spec.options if o.name in res.extras}))
        return
    click.echo(f"wrote {out}: {n} frames at {res.fps} fps ({n / res.fps:.2f} s) in {dt:.1f} s"
               + format_summary(res, spec))
