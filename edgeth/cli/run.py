"""`edgeth run`: a bundle's whole pipeline on one backend -> mp4, the way an app would."""
from __future__ import annotations

from pathlib import Path

import click

from edgeth.cli.face_options import crop_mode, face_options, summary
from edgeth.cli.options import FamilyOptionsCommand, opt_option, video_quality_option



@click.command("run", cls=FamilyOptionsCommand)
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--image", required=True, type=click.Path(path_type=Path), help="Portrait photo (the face is detected and cropped to the bundle's framing).")
@click.option("--audio", required=True, type=click.Path(path_type=Path), help="Speech audio (.wav).")
@click.option("--backend", default="executorch", show_default=True,
              help="torch, executorch, onnxruntime, coreml or tensorrt.")
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path), help="Output .mp4.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampler noise seed.")
@opt_option
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Shorthand for --opt steps=N (diffusion families).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Runtime threads.")
@click.option("--stream", is_flag=True, help="Read the wav progressively and stream: frames as soon as they are final.")
@click.option("--chunk-ms", type=float, default=200.0, show_default=True, help="With --stream: audio chunk length.")
@click.option("--npz", type=click.Path(path_type=Path), default=None, help="Also save frames and stages as .npz.")
@face_options
@video_quality_option
def cli(bundle, image, audio, backend, out, seed, opts, steps, threads, stream, chunk_ms, npz, crop_box, no_crop,
        no_paste, as_json, video_quality):
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
    from edgeth.data.video import read_audio, video_quality as check_quality, write_mp4
    from edgeth.io_utils import atomic_path
    from edgeth.runtime_py.face import read_portrait
    from edgeth.runtime_py.pipeline import Pipeline

    check_quality(video_quality)  # a bad name fails before any work
    mode = crop_mode(crop_box, no_crop)
    pipe = Pipeline(bundle, backend, threads)
    spec = pipe.spec
    opts = spec.parse_options(parse_opts(opts, steps=steps))
    sr = spec.audio.get("sample_rate", 16000)
    portrait = read_portrait(image, spec, mode)
    aud = read_audio(audio, sample_rate=sr)
    t0 = time.perf_counter()
    figs = None
    if stream:
        from edgeth.bench.stream import stream_wav

        res, figs = stream_wav(pipe, portrait.model_input, audio, chunk_ms, seed=seed, **opts)
    else:
        res = pipe.run(portrait.model_input, aud, seed=seed, progress=not as_json, **opts)
    dt = time.perf_counter() - t0
    write_mp4(out, portrait.paste(res.frames, not no_paste), res.fps, audio=aud, sample_rate=sr, quality=video_quality)
    if npz:
        arrays = {"frames": np.asarray(res.frames)}
        arrays.update({k: v for k, v in res.extras.items() if isinstance(v, np.ndarray)})
        with atomic_path(npz) as tmp:
            save_npz(tmp, arrays)
    n = len(res.frames)
    if as_json:
        click.echo(summary(out, n, res.fps, dt, portrait.to_json(), not no_paste, backend=backend,
                           **({"stream": figs} if figs else {})))
        return
    click.echo(f"wrote {out}: {n} frames at {res.fps} fps on {backend} in {dt:.1f} s ({n / max(dt, 1e-9):.1f} frames/s)"
               + format_summary(res, spec))
    if figs:
        from edgeth.bench.stream import stream_line

        click.echo(f"streamed in {chunk_ms:g} ms chunks: " + stream_line(figs))
