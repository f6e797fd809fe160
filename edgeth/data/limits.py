"""What edgeth refuses before decoding a user's media, and the RIFF/WAVE header check.

Limits (each can be raised with its environment variable):
  EDGETH_MAX_IMAGE_PIXELS    40,000,000 (e.g. 6324 x 6324); checked from the header, before decoding
  EDGETH_MAX_AUDIO_SECONDS   600 (10 min); checked from the header (wav) or while decoding (mp4, m4a...)
Fixed floors: images at least MIN_IMAGE_SIDE px a side, audio at least MIN_AUDIO_SECONDS (one
video frame at 25 fps) at a sample rate in [MIN_RATE, MAX_RATE].

`wav_header(path)` walks the RIFF chunks of a .wav without reading the samples and refuses a
file whose header promises more sample bytes than the file holds (a truncated copy), so a
damaged recording is an error instead of a silently shorter clip.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from edgeth.errors import InputError

MIN_IMAGE_SIDE = 16
MIN_AUDIO_SECONDS = 0.04
MIN_RATE, MAX_RATE = 4000, 768000


def _env_limit(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        v = float(raw) if raw else default
    except ValueError:
        raise InputError(f"{name}={raw!r} is not a number", f"set it to a number (default {default:g})") from None
    if not v > 0:
        raise InputError(f"{name}={raw!r} must be positive", f"set it to a number above 0 (default {default:g})")
    return v


def max_image_pixels() -> int:
    return int(_env_limit("EDGETH_MAX_IMAGE_PIXELS", 40_000_000))


def max_audio_seconds() -> float:
    return _env_limit("EDGETH_MAX_AUDIO_SECONDS", 600.0)


def check_image_size(path: Path, width: int, height: int) -> None:
    limit = max_image_pixels()
    if width * height > limit:
        raise InputError(f"image {path} is {width}x{height} ({width * height:,} pixels), over edgeth's limit of "
                         f"{limit:,} pixels", "downscale it, or raise EDGETH_MAX_IMAGE_PIXELS")
    if min(width, height) < MIN_IMAGE_SIDE:
        raise InputError(f"image {path} is {width}x{height}, too small for a portrait",
                         f"pass an image at least {MIN_IMAGE_SIDE} px on each side")


def check_audio_length(path: Path, seconds: float, rate: float, *, whole: bool = True) -> None:
    """Rate in range, length under the limit, and (for the whole clip) at least one video frame."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InputError(f"audio {path} has a sample rate of {rate:g} Hz", f"pass audio sampled at "
                         f"{MIN_RATE}-{MAX_RATE} Hz (speech is usually 16-48 kHz)")
    limit = max_audio_seconds()
    if seconds > limit:
        raise InputError(f"audio {path} lasts {seconds:.0f} s, over edgeth's limit of {limit:.0f} s",
                         "cut it into shorter clips, or raise EDGETH_MAX_AUDIO_SECONDS")
    if whole and seconds < MIN_AUDIO_SECONDS:
        raise InputError(f"audio {path} lasts {seconds * 1000:.1f} ms, shorter than one video frame",
                         f"pass at least {MIN_AUDIO_SECONDS * 1000:.0f} ms of speech")


@dataclass
class WavHeader:
    fmt: int  # 1 PCM, 3 IEEE float, 0xFFFE extensible
    channels: int
    rate: int
    bits: int
    data_bytes: int

    @property
    def frames(self) -> int:
        return self.data_bytes // max(1, self.channels * self.bits // 8)


def wav_header(path: Path) -> WavHeader:
    """The fmt and data chunks of a RIFF/WAVE file; InputError for a truncated or malformed one."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            raise InputError(f"{path} is not a RIFF/WAVE file", "pass a PCM .wav (or an mp4/m4a with an audio track)")
        endian = "<" if head[:4] == b"RIFF" else ">"
        fmt = None
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            cid, clen = struct.unpack(endian + "4sI", f.read(8))
            if cid == b"fmt ":
                body = f.read(min(clen, 40))
                if clen < 16 or len(body) < 16:
                    break
                tag, ch, rate, _, _, bits = struct.unpack(endian + "HHIIHH", body[:16])
                fmt = (tag, ch, rate, bits)
            elif cid == b"data":
                if fmt is None:
                    break
                if pos + 8 + clen > size:
                    raise InputError(f"{path} is truncated: its header promises {clen:,} bytes of samples, the file "
                                     f"holds {max(0, size - pos - 8):,}", "re-copy or re-export the recording")
                tag, ch, rate, bits = fmt
                if ch < 1 or bits < 8 or bits % 8:
                    raise InputError(f"{path} has an invalid format ({ch} channels, {bits} bits)",
                                     "re-export it as 16-bit PCM")
                return WavHeader(tag, ch, rate, bits, clen)
            pos += 8 + clen + (clen & 1)
    raise InputError(f"{path} has no readable fmt/data chunks (truncated or malformed)",
                     "re-copy or re-export the recording")
