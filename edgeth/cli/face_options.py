"""The face-crop flags `edgeth generate` and `edgeth run` share, and their JSON summary."""
from __future__ import annotations

from typing import Any

import click


def face_options(f):
    """--crop X,Y,W,H, --no-crop, --no-paste, --json (see edgeth.runtime_py.face)."""
    f = click.option("--json", "as_json", is_flag=True,
                     help="Print a JSON summary (frames, fps, the crop box and framing) instead of the line.")(f)
    f = click.option("--no-paste", is_flag=True,
                     help="Write the model-size crop instead of pasting it back into the photo.")(f)
    f = click.option("--no-crop", is_flag=True,
                     help="No face detection: feed the photo's centre square (pre-cropped portraits).")(f)
    f = click.option("--crop", "crop_box", default=None, metavar="X,Y,W,H",
                     help="Force the crop box in photo pixels instead of detecting the face.")(f)
    return f


def crop_mode(crop_box: str | None, no_crop: bool) -> Any:
    """"auto", "off" or a Box, from the flags."""
    from edgeth.errors import InputError
    from edgeth.runtime_py.face import parse_box

    if crop_box and no_crop:
        raise InputError("--crop and --no-crop contradict each other", "pass one of them")
    return parse_box(crop_box) if crop_box else ("off" if no_crop else "auto")


def summary(out, n: int, fps: float, elapsed: float, crop: dict[str, Any], paste: bool, **extra: Any) -> str:
    """The --json summary: what was written and the crop an app needs to reproduce it."""
    import json

    return json.dumps({"out": str(out), "frames": int(n), "fps": fps, "seconds": round(n / fps, 3),
                       "elapsed_s": round(elapsed, 2),
                       "video_size": crop["photo_size"] if paste else [crop["model_size"]] * 2,
                       "pasted": bool(paste), "crop": crop, **extra}, indent=2)
