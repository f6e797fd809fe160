"""The motion token file (`.motion`): VQTalker's GRFSQ indices as a small binary stream, and
the encode (video -> file) / decode (file + portrait -> frames) paths behind `edgeth codec`.

Format (version 1; byte layout in README.md next to this file): a header (magic, version, G,
R, FSQ levels, fps, frame count, bits per frame), the payload, a CRC32 of everything before
it. Each frame's G*R indices (group-major, g*R + r) form one mixed-radix number
sum_j idx_j * K^j (K = prod(levels)), written in B = bit_length(K^(G*R) - 1) bits, MSB first,
frames back to back, zero-padded to a byte: log2(K) bits per index up to < 1 bit per frame
(446 bits a frame for G = 12, R = 4, K = 625: 11,150 bps at 25 fps vs 11,145 configured).

The reader is strict: every defect (short file, bad magic, unknown version, CRC mismatch,
length that disagrees with the header, a frame value >= K^(G*R), a header that disagrees
with the run's quantizer or fps) is an InputError (exit 2), and writes go through a temp
file and a rename, so a failed command leaves no half-written output.

Shape legend: n frames, G groups, R residual layers, K codes per index.
"""
from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeth.errors import InputError

MAGIC = b"VQTM"
VERSION = 1
_HINT = "re-encode it with `edgeth codec encode --ckpt RUN/ clip.mp4 -o clip.motion`"


@dataclass
class TokenStream:
    indices: np.ndarray  # int32 [n, G, R]
    levels: tuple[int, ...]
    fps: int

    @property
    def codes(self) -> int:
        return math.prod(self.levels)

    def bits_per_frame(self) -> int:
        g, r = self.indices.shape[1:]
        return frame_bits(g, r, tuple(self.levels)) or (self.codes ** (g * r) - 1).bit_length()

    def configured_bitrate(self) -> float:
        g, r = self.indices.shape[1:]
        return g * r * math.log2(self.codes) * self.fps


def _header(g: int, r: int, levels: tuple[int, ...], fps: int, n: int, bpf: int) -> bytes:
    return MAGIC + struct.pack("<BBBB", VERSION, g, r, len(levels)) + bytes(levels) + struct.pack("<HIH", fps, n, bpf)


MAX_FRAME_BITS = 0xFFFF  # the header's bits-per-frame field is 16 bits wide


def frame_bits(g: int, r: int, levels: tuple[int, ...]) -> int | None:
    """B = bit_length(K^(G*R) - 1), or None when it cannot fit the header's 16-bit field (checked
    on the logarithm first, so a forged header never makes the reader build a giant integer)."""
    if g * r * sum(math.log2(x) for x in levels) > MAX_FRAME_BITS + 1:
        return None
    b = (math.prod(levels) ** (g * r) - 1).bit_length()
    return b if b <= MAX_FRAME_BITS else None


def _pack(values: list[int], bpf: int) -> bytes:
    """Frame values (each < 2^bpf) as a bpf-bit big-endian stream zero-padded to a byte; linear in
    the frame count (one big integer shifted per frame was quadratic: minutes for an hour)."""
    nb = (bpf + 7) // 8
    rows = np.frombuffer(b"".join(v.to_bytes(nb, "big") for v in values), np.uint8).reshape(len(values), nb)
    return np.packbits(np.unpackbits(rows, axis=1)[:, nb * 8 - bpf:]).tobytes()


def _unpack(payload: bytes, n: int, bpf: int) -> list[int]:
    nb = (bpf + 7) // 8
    bits = np.unpackbits(np.frombuffer(payload, np.uint8))[: n * bpf].reshape(n, bpf)
    rows = np.packbits(np.pad(bits, ((0, 0), (nb * 8 - bpf, 0))), axis=1)
    return [int.from_bytes(row.tobytes(), "big") for row in rows]


def to_bytes(stream: TokenStream) -> bytes:
    idx = np.asarray(stream.indices)
    if idx.ndim != 3 or idx.size == 0 or idx.min() < 0 or idx.max() >= stream.codes:
        raise InputError(f"indices must be [frames, G, R] in [0, {stream.codes}), got {idx.shape}", _HINT)
    n, g, r = idx.shape
    k, bpf = stream.codes, frame_bits(g, r, tuple(stream.levels))
    if bpf is None:
        raise InputError(f"{g} x {r} indices of {k} codes need more than {MAX_FRAME_BITS} bits per frame",
                         "use fewer groups, residual layers or levels")
    values = []
    for row in idx.reshape(n, g * r).tolist():
        v = 0
        for x in reversed(row):
            v = v * k + x
        values.append(v)
    body = _header(g, r, tuple(stream.levels), int(stream.fps), n, bpf) + _pack(values, bpf)
    return body + struct.pack("<I", zlib.crc32(body))


def from_bytes(data: bytes, source: str = "token file") -> TokenStream:
    if len(data) < 8 + 4:
        raise InputError(f"{source} is truncated ({len(data)} bytes)", _HINT)
    if data[:4] != MAGIC:
        raise InputError(f"{source} is not a VQTalker motion token file (magic {data[:4]!r})", _HINT)
    version, g, r, nl = struct.unpack("<BBBB", data[4:8])
    if version != VERSION:
        raise InputError(f"{source} has format version {version}; this edgeth reads version {VERSION}",
                         "decode it with the edgeth that wrote it, or re-encode it")
    head = 8 + nl + 8
    if len(data) < head + 4:
        raise InputError(f"{source} is truncated (header incomplete)", _HINT)
    (crc,) = struct.unpack("<I", data[-4:])
    if zlib.crc32(data[:-4]) != crc:
        raise InputError(f"{source} is corrupted (CRC32 mismatch)", _HINT)
    levels = tuple(data[8:8 + nl])
    fps, n, bpf = struct.unpack("<HIH", data[8 + nl:head])
    need = frame_bits(g, r, levels) if (g and r and nl and min(levels) >= 2) else None
    if not (n and fps) or need is None:
        raise InputError(f"{source} has an invalid header (G={g}, R={r}, levels={levels}, fps={fps}, frames={n})", _HINT)
    if bpf != need:
        raise InputError(f"{source}: header says {bpf} bits per frame, its config needs {need}", _HINT)
    payload = data[head:-4]
    if len(payload) != (n * bpf + 7) // 8:  # checked before anything is sized by the frame count
        raise InputError(f"{source} has {len(payload)} payload bytes, its header needs {(n * bpf + 7) // 8} "
                         f"(truncated or padded)", _HINT)
    k, limit = math.prod(levels), math.prod(levels) ** (g * r)
    rows = []
    for v in _unpack(payload, n, bpf):
        if v >= limit:
            raise InputError(f"{source} holds a frame value out of range (corrupted payload)", _HINT)
        row = []
        for _ in range(g * r):
            v, x = divmod(v, k)
            row.append(x)
        rows.append(row)
    return TokenStream(np.asarray(rows, np.int32).reshape(n, g, r), levels, fps)


def check_matches(stream: TokenStream, spec: Any, source: str) -> None:
    """The stream must have been written for this run's quantizer and frame rate."""
    q = spec.extra["quantizer"]
    want = (q["groups"], q["residual"], tuple(q["levels"]), spec.fps)
    got = (*stream.indices.shape[1:], tuple(stream.levels), stream.fps)
    if got != want:
        raise InputError(f"{source} was written for G={got[0]}, R={got[1]}, levels={list(got[2])}, {got[3]} fps; "
                         f"this run uses G={want[0]}, R={want[1]}, levels={list(want[2])}, {want[3]} fps",
                         "decode it with the run that encoded it")


def write_file(path: str | Path, stream: TokenStream) -> int:
    from edgeth.io_utils import atomic_path

    data = to_bytes(stream)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return len(data)


def read_file(path: str | Path) -> TokenStream:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"token file {p} not found", "pass a .motion file written by `edgeth codec encode`")
    return from_bytes(p.read_bytes(), str(p))


# -- encode / decode with a run's programs (the PyTorch reference) -------------------------
def _reference(ckpt: Path):
    from edgeth.generate import load_reference
    from edgeth.runtime_py.torch_backend import torch_call

    fam, spec, progs = load_reference(ckpt)
    if spec.kind != "vqtalker":
        raise InputError(f"{ckpt} is a {fam.name} run; the motion codec needs a VQTalker run",
                         "pass --ckpt of `edgeth train vqtalker`")
    return spec, torch_call(progs, "cpu")


def read_frames(video: Path, size: int) -> np.ndarray:
    """Frames of a clip at 25 fps, centre-cropped and resized, float32 [n, S, S, 3] in [0, 1]."""
    from edgeth.data.dataset import retime
    from edgeth.data.video import center_crop_resize, read_video

    frames, fps = read_video(video)
    frames = retime(frames, fps)
    return np.stack([center_crop_resize(f, size) for f in frames]).astype(np.float32) / 255.0


def encode_video(ckpt: Path, video: Path, out: Path, source: Path | None = None) -> dict[str, Any]:
    """Tokenize a clip (motion relative to `source`, default the clip's first frame) into `out`."""
    from edgeth.data.video import read_image
    from edgeth.models.vqtalker.driver import appearance, tokenize_frames

    spec, call = _reference(ckpt)
    frames = read_frames(video, spec.image_size)
    ref = read_image(source, spec.image_size) if source else frames[0]
    _, _, f_s = appearance(call, spec, ref)
    stream = TokenStream(tokenize_frames(call, spec, frames, f_s), tuple(spec.extra["quantizer"]["levels"]), spec.fps)
    size = write_file(out, stream)
    n = len(frames)
    return {"frames": n, "bytes": size, "indices": stream.indices, "measured_bps": size * 8 * spec.fps / n,
            "payload_bps": stream.bits_per_frame() * spec.fps, "configured_bps": stream.configured_bitrate()}


def decode_file(ckpt: Path, image: Path, tokens: Path, out: Path | None = None) -> dict[str, Any]:
    """Render a token file on a portrait; writes `out` (mp4) when given."""
    from edgeth.data.video import read_image
    from edgeth.models.vqtalker.driver import appearance, render_tokens

    spec, call = _reference(ckpt)
    stream = read_file(tokens)
    check_matches(stream, spec, str(tokens))
    if out is not None and Path(out).suffix.lower() != ".mp4":
        raise InputError(f"output {out} is not an .mp4 path", "name the output like out.mp4")
    skips, f_g, _ = appearance(call, spec, read_image(image, spec.image_size))
    frames = render_tokens(call, spec, skips, f_g, stream.indices)
    if out is not None:
        from edgeth.data.video import write_mp4
        from edgeth.io_utils import atomic_path

        with atomic_path(out) as tmp:
            write_mp4(tmp, np.clip(np.round(frames * 255), 0, 255).astype(np.uint8), spec.fps)
    size = Path(tokens).stat().st_size
    return {"frames": frames, "measured_bps": size * 8 * spec.fps / len(frames),
            "configured_bps": stream.configured_bitrate()}


def drive_video(ckpt: Path, image: Path, video: Path, out: Path) -> dict[str, Any]:
    """Video-driven mode (`edgeth generate --driving`): the clip's motion, tokenized relative to
    its first frame, rendered on the portrait; writes `out` (mp4)."""
    from edgeth.data.video import read_image, write_mp4
    from edgeth.io_utils import atomic_path
    from edgeth.models.vqtalker.driver import drive

    if Path(out).suffix.lower() != ".mp4":
        raise InputError(f"output {out} is not an .mp4 path", "name the output like out.mp4")
    spec, call = _reference(ckpt)
    res = drive(spec, call, image=read_image(image, spec.image_size), driving=read_frames(video, spec.image_size))
    with atomic_path(out) as tmp:
        write_mp4(tmp, np.clip(np.round(res.frames * 255), 0, 255).astype(np.uint8), spec.fps)
    return {"frames": res.frames, "indices": res.extras["indices"], "fps": spec.fps}
