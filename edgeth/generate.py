"""The PyTorch reference path behind `edgeth generate`: RUN/ + portrait + speech -> mp4.

It runs the family's programs eagerly through edgeth.runtime_py.torch_backend.torch_call and
the pipeline driver named by the family's PipelineSpec — the same host code every exported
backend runs — so the reference and the device differ only in who executes the programs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeth.errors import InputError


def load_reference(run_dir: Path, device: str = "cpu") -> tuple[Any, Any, list]:
    """(family, PipelineSpec, programs) of a trained run."""
    from edgeth.models import resolve_run

    fam = resolve_run(run_dir)
    run = fam.load(Path(run_dir), device=device)
    return fam, fam.pipeline(run), fam.programs(run)


def generate(ckpt: Path, image_path: Path, audio_path: Path, out: Path, *, seed: int = 0, device: str = "cpu",
             progress: bool = True, return_spec: bool = False, crop: Any = "auto", paste: bool = True,
             video_quality: str = "standard", **options: Any):
    """Write an mp4 (audio muxed in) and return the driver's PipelineResult (and the spec);
    extras["crop"] holds the crop JSON.

    crop: "auto" (detect the face), "off" (centre square) or a runtime_py.face.Box; paste=False
    writes the model-size crop instead of the photo-size video. options: the family's pipeline
    options (PipelineSpec.options; text or values, None = the spec's default); an unknown name is
    an InputError listing the valid ones. video_quality: a name in edgeth.data.video.QUALITIES.
    """
    from edgeth.data.video import read_audio, video_quality as check_quality, write_mp4
    from edgeth.runtime_py.face import read_portrait
    from edgeth.runtime_py.pipelines import SeededNoise, get_pipeline
    from edgeth.runtime_py.torch_backend import torch_call

    for p, what in ((image_path, "image"), (audio_path, "audio")):
        if not Path(p).is_file():
            raise InputError(f"{what} file {p} not found", f"pass an existing {what} file")
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise InputError(f"output {out} is not an .mp4 path", "name the output like out.mp4")
    check_quality(video_quality)
    _, spec, progs = load_reference(ckpt, device)
    opts = spec.parse_options(options)  # bad options fail before any reading or work
    portrait = read_portrait(image_path, spec, crop)
    sr = int(spec.audio.get("sample_rate", 16000))
    audio = np.asarray(read_audio(audio_path, sr), dtype=np.float32).reshape(-1)
    if audio.size == 0:
        raise InputError(f"audio file {audio_path} has no samples", "pass a non-empty speech recording")
    result = get_pipeline(spec.kind)(spec, torch_call(progs, device), image=portrait.model_input, audio=audio,
                                     noise=SeededNoise(seed), progress=progress, **opts)
    write_mp4(out, portrait.paste(result.frames, paste), result.fps, audio, sr, quality=video_quality)
    result.extras["crop"] = portrait.to_json()
    return (result, spec) if return_spec else result


def drive_video(ckpt: Path, image_path: Path, driving: Path, out: Path) -> dict[str, Any]:
    """Video-driven generation (`generate --driving`) for families that offer it (`family.drive`)."""
    from edgeth.models import resolve_run

    fam = resolve_run(ckpt)
    if not callable(getattr(fam, "drive", None)):
        raise InputError(f"model family {fam.name!r} has no video-driven mode", "pass --audio instead of --driving")
    for p, what in ((image_path, "image"), (driving, "driving video")):
        if not Path(p).is_file():
            raise InputError(f"{what} file {p} not found", f"pass an existing {what} file")
    return fam.drive(Path(ckpt), Path(image_path), Path(driving), Path(out))
