"""`edgeth run`: a bundle's whole pipeline on one backend -> mp4, the way an app would."""
from __future__ import annotations

from pathlib import Path

import click

from edgeth.cli.options import FamilyOptionsCommand, opt_option, video_quality_option


@click.command("run", cls=FamilyOptionsCommand)
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--image", required=True, type=click.Path(path_type=Path), help="Portrait image (resized to the bundle's size).")
@click.option("--audio", required=True, type=click.Path(path_type=Path), help="Speech audio (.wav).")
@click.option("--backend", default="executorch", show_default=True,
              help="torch, executorch, onnxruntime, coreml or tensorrt.")
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path), help="Output .mp4.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampler noise seed.")
@opt_option
@click.option("--steps", type=int, default=None, help="Shorthand for --opt steps=N (diffusion families).")
@click.option("--threads", type=int, default=None, help="Runtime threads.")
@click.option("--npz", type=click.Path(path_type=Path), default=None, help="Also save frames and stages as .npz.")
@video_quality_option
def cli(bundle, image, audio, backend, out, seed, opts, steps, threads, npz, video_quality):
    """Run a bundle's whole pipeline (audio -> motion -> frames) on a chosen backend.

    \b
    Example:
      edgeth run bundle/ --image portrait.png --audio speech.wav --backend executorch -o out.mp4
      edgeth run bundle/ --image portrait.png --audio speech.wav --backend onnxruntime -o out.mp4 --opt steps=20
    """
    import time

    import numpy as np

    from edgeth.bundle.golden import save_npz
    from edgeth.cli.options import format_summary, parse_opts
    from edgeth.data.video import read_audio, read_image, video_quality as check_quality, write_mp4
    from edgeth.io_utils import atomic_path
    from edgeth.runtime_py.pipeline import Pipeline

    check_quality(video_quality)  # a bad name fails before any work

    pipe = Pipeline(bundle, backend, threads)
    spec = pipe.spec
    opts = spec.parse_options(parse_opts(opts, steps=steps))
    sr = spec.audio.get("sample_rate", 16000)
    img = read_image(image, size=spec.image_size)
    aud = read_audio(audio, sample_rate=sr)
    t0 = time.perf_counter()
    res = pipe.run(img, aud, seed=seed, progress=True, **opts)
    dt = time.perf_counter() - t0
    write_mp4(out, res.frames, res.fps, audio=aud, sample_rate=sr, quality=video_quality)
    if npz:
        arrays = {"frames": np.asarray(res.frames)}
        arrays.update({k: v for k, v in res.extras.items() if isinstance(v, np.ndarray)})
        with atomic_path(npz) as tmp:
            save_npz(tmp, arrays)
    n = len(res.frames)
    click.echo(f"wrote {out}: {n} frames at {res.fps} fps on {backend} in {dt:.1f} s ({n / max(dt, 1e-9):.1f} frames/s)"
               + format_summary(res, spec))
