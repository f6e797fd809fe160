"""`edgeth codec encode|decode`: VQTalker motion token files (edgeth.models.vqtalker.codec)."""
from __future__ import annotations

from pathlib import Path

import click


@click.group("codec")
def cli():
    """Encode a clip's facial motion into a compact token file, or render one on a portrait.

    \b
    Examples:
      edgeth codec encode --ckpt runs/vq clip.mp4 -o clip.motion
      edgeth codec decode --ckpt runs/vq --image portrait.png clip.motion -o out.mp4
    """


def _rates(r) -> str:
    return f"measured {r['measured_bps'] / 1000:.2f} kbps (configured {r['configured_bps'] / 1000:.2f} kbps)"


@cli.command("encode")
@click.option("--ckpt", required=True, type=click.Path(path_type=Path), help="VQTalker RUN/ directory.")
@click.argument("video", type=click.Path(path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Output token file (.motion).")
@click.option("--source", type=click.Path(path_type=Path), default=None,
              help="Reference image the motion is relative to (default: the clip's first frame).")
def encode(ckpt: Path, video: Path, out: Path, source: Path | None):
    """Tokenize VIDEO's facial motion into OUT."""
    from edgeth.models.vqtalker.codec import encode_video

    r = encode_video(ckpt, video, out, source)
    click.echo(f"wrote {out}: {r['frames']} frames, {r['bytes']} bytes, {_rates(r)}")


@cli.command("decode")
@click.option("--ckpt", required=True, type=click.Path(path_type=Path), help="VQTalker RUN/ directory.")
@click.option("--image", required=True, type=click.Path(path_type=Path), help="Portrait to animate.")
@click.argument("tokens", type=click.Path(path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Output .mp4.")
def decode(ckpt: Path, image: Path, tokens: Path, out: Path):
    """Render the token file TOKENS on a portrait."""
    from edgeth.models.vqtalker.codec import decode_file

    r = decode_file(ckpt, image, tokens, out)
    click.echo(f"wrote {out}: {len(r['frames'])} frames, {_rates(r)}")
