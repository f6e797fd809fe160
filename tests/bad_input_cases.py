"""The bad-input corpus, part 1: the case registry, the case folder (WS) and the media and
checkpoint cases (part 2 and the harness: tests/test_bad_inputs.py).

Every file a user or a device hands edgeth, broken the ways files break.

Each case builds its input in a fresh folder (no binary blobs in the repo), runs the CLI
in-process and asserts: the documented exit code (2: bad input), exactly one
`error: … — what to do` line that names the file, no traceback, and nothing written or
changed anywhere in the case's folder (no output file, no temp leftovers, inputs untouched).
Unusual-but-valid inputs (16-bit, CMYK, alpha images; 8/24-bit, float, 6-channel, 44.1 kHz
stereo wav; m4a audio) must succeed instead.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
from bundle_support import write_media
from reliability_support import wav_bytes

CASES: dict[str, callable] = {}


def case(name):
    def deco(fn):
        CASES[name] = fn
        return fn
    return deco


class WS:
    """A case's folder: inputs under in/, outputs asked for under out/."""

    def __init__(self, root: Path, bundle: Path, run: Path):
        self.root, self._bundle, self._run = root, bundle, run
        self.inp = root / "in"
        self.out = root / "out"
        self.inp.mkdir(parents=True)
        self.png, self.wav = write_media(self.inp)

    def bundle(self) -> Path:
        dest = self.inp / "bundle"
        if not dest.exists():
            shutil.copytree(self._bundle, dest, symlinks=True)
        return dest

    def run(self) -> Path:
        dest = self.inp / "run"
        if not dest.exists():
            shutil.copytree(self._run, dest)
        return dest

    def file(self, name: str, data: bytes | str) -> Path:
        p = self.inp / name
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        return p

    def run_cmd(self, image=None, audio=None, *extra):
        """`edgeth run` on the fixture bundle (torch backend: needs no runtime)."""
        return ["run", str(self.bundle()), "--image", str(image or self.png), "--audio", str(audio or self.wav),
                "--backend", "torch", "-o", str(self.out / "video.mp4"), "--no-crop", *extra]

    def generate_cmd(self, run=None, *extra):
        return ["generate", "--ckpt", str(run or self.run()), "--image", str(self.png), "--audio", str(self.wav),
                "-o", str(self.out / "video.mp4"), "--quiet", "--no-crop", *extra]

    def verify_cmd(self, bundle=None, *extra):
        return ["verify", str(bundle or self.bundle()), "--backend", "torch", "--programs-only", *extra]

    def manifest(self, edit) -> Path:
        """Apply edit(manifest dict) to the bundle copy's manifest.json."""
        b = self.bundle()
        m = json.loads((b / "manifest.json").read_text())
        edit(m)
        (b / "manifest.json").write_text(json.dumps(m))
        return b

    def rehash(self, rel: str) -> Path:
        """Record rel's current sha256 in the manifest (so the hash check passes and the reader is tested)."""
        from edgeth.io_utils import sha256_file

        return self.manifest(lambda m: m["files"].__setitem__(rel, sha256_file(self.bundle() / rel)))


# -- images ---------------------------------------------------------------------------------
def _png_header(w: int, h: int) -> bytes:
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * (3 * w + 1))) + chunk(b"IEND", b""))


@case("image-text")
def _(ws):
    return ws.run_cmd(ws.file("face.png", "not an image")), ["face.png"]


@case("image-empty")
def _(ws):
    return ws.run_cmd(ws.file("face.png", b"")), ["face.png"]


@case("image-truncated-png")
def _(ws):
    return ws.run_cmd(ws.file("face.png", ws.png.read_bytes()[:200])), ["face.png"]


@case("image-truncated-jpeg")
def _(ws):
    from PIL import Image

    Image.open(ws.png).convert("RGB").save(ws.inp / "full.jpg")
    return ws.run_cmd(ws.file("face.jpg", (ws.inp / "full.jpg").read_bytes()[:300])), ["face.jpg"]


@case("image-1x1")
def _(ws):
    from PIL import Image

    Image.new("RGB", (1, 1)).save(ws.inp / "dot.png")
    return ws.run_cmd(ws.inp / "dot.png"), ["dot.png", "too small"]


@case("image-decompression-bomb")
def _(ws):  # 20000 x 20000: over Pillow's own limit, refused from the header
    return ws.run_cmd(ws.file("bomb.png", _png_header(20000, 20000))), ["bomb.png"]


@case("image-over-edgeth-limit")
def _(ws):  # 9000 x 9000 = 81 M pixels: under Pillow's limit, over edgeth's; never decoded
    return ws.run_cmd(ws.file("huge.png", _png_header(9000, 9000))), ["huge.png", "EDGETH_MAX_IMAGE_PIXELS"]


@case("image-missing")
def _(ws):
    return ws.run_cmd(ws.inp / "nope.png"), ["nope.png"]


@case("image-is-a-folder")
def _(ws):
    (ws.inp / "pics.png").mkdir()
    return ws.run_cmd(ws.inp / "pics.png"), ["pics.png"]


@case("image-float-nan")
def _(ws):
    from PIL import Image

    Image.fromarray(np.full((32, 32), np.nan, np.float32), mode="F").save(ws.inp / "nan.tiff")
    return ws.run_cmd(ws.inp / "nan.tiff"), ["nan.tiff"]


# -- audio ----------------------------------------------------------------------------------
def _tone(n=16000, rate=16000):
    return (0.3 * np.sin(2 * np.pi * 200 * np.arange(n) / rate) * 32767).astype("<i2")


@case("audio-empty")
def _(ws):
    return ws.run_cmd(audio=ws.file("talk.wav", b"")), ["talk.wav"]


@case("audio-truncated")  # the header promises a second of samples, the file holds half of it
def _(ws):
    return ws.run_cmd(audio=ws.file("talk.wav", wav_bytes(_tone())[:44 + 16000])), ["talk.wav", "truncated"]


@case("audio-nan")
def _(ws):
    return ws.run_cmd(audio=ws.file("talk.wav", wav_bytes(np.full(8000, np.nan, "<f4"), fmt=3, bits=32))), ["talk.wav"]


@case("audio-inf")
def _(ws):
    return ws.run_cmd(audio=ws.file("talk.wav", wav_bytes(np.full(8000, np.inf, "<f4"), fmt=3, bits=32))), ["talk.wav"]


@case("audio-shorter-than-a-frame")
def _(ws):
    return ws.run_cmd(audio=ws.file("talk.wav", wav_bytes(_tone(100)))), ["talk.wav", "frame"]


@case("audio-undecodable-m4a")
def _(ws):
    return ws.run_cmd(audio=ws.file("talk.m4a", b"\x00\x00\x00\x20ftypM4A " + os.urandom(400))), ["talk.m4a"]


@case("audio-text-named-wav")
def _(ws):
    return ws.run_cmd(audio=ws.file("talk.wav", "RIFF but not really")), ["talk.wav"]


@case("audio-rate-1hz")
def _(ws):
    return ws.run_cmd(audio=ws.file("talk.wav", wav_bytes(_tone(100), rate=1))), ["talk.wav", "sample rate"]


@case("audio-two-hours")  # a sparse 2 h file: refused from its header, never read into memory
def _(ws):
    n = 2 * 3600 * 16000 * 2
    p = ws.file("long.wav", wav_bytes(np.zeros(0, "<i2"), data_bytes=n))
    with open(p, "r+b") as f:
        f.truncate(44 + n)
    return ws.run_cmd(audio=p), ["long.wav", "EDGETH_MAX_AUDIO_SECONDS"]


@case("audio-no-data-chunk")
def _(ws):
    return ws.run_cmd(audio=ws.file("talk.wav", wav_bytes(_tone())[:36])), ["talk.wav"]


@case("audio-zero-channels")
def _(ws):
    return ws.run_cmd(audio=ws.file("talk.wav", wav_bytes(_tone(), channels=0))), ["talk.wav"]


@case("audio-mp4-without-audio")
def _(ws):
    from edgeth.data.video import write_mp4

    write_mp4(ws.inp / "mute.mp4", np.zeros((5, 32, 32, 3), np.uint8))
    return ws.run_cmd(audio=ws.inp / "mute.mp4"), ["mute.mp4", "no audio"]


# -- video clips (`edgeth data inspect --strict`) ---------------------------------------------
@case("video-corrupt-mp4")
def _(ws):
    (ws.inp / "clips").mkdir()
    ws.file("clips/broken.mp4", b"\x00\x00\x00\x18ftypmp42" + os.urandom(300))
    return ["data", "inspect", str(ws.inp / "clips"), "--strict"], ["broken.mp4"]


@case("video-no-video-stream")
def _(ws):
    import av

    (ws.inp / "clips").mkdir()
    with av.open(str(ws.inp / "clips" / "voice.mp4"), "w", format="mp4") as c:
        st = c.add_stream("aac", rate=16000)
        st.layout = "mono"
        fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        fr.sample_rate = 16000
        for pkt in [*st.encode(fr), *st.encode()]:
            c.mux(pkt)
    return ["data", "inspect", str(ws.inp / "clips"), "--strict"], ["voice.mp4"]


@case("video-zero-frames")  # an mp4 whose media data box is emptied: a video track with nothing to decode
def _(ws):
    from edgeth.data.video import write_mp4

    (ws.inp / "clips").mkdir()
    write_mp4(ws.inp / "full.mp4", np.zeros((3, 32, 32, 3), np.uint8))
    b = (ws.inp / "full.mp4").read_bytes()
    i = b.find(b"mdat")
    size = int.from_bytes(b[i - 4:i], "big")
    ws.file("clips/empty.mp4", b[:i - 4] + (8).to_bytes(4, "big") + b"mdat" + b[i - 4 + size:])
    (ws.inp / "full.mp4").unlink()
    return ["data", "inspect", str(ws.inp / "clips"), "--strict"], ["empty.mp4"]


# -- checkpoints (a real IF-MDM run: `edgeth generate` / `edgeth export --ckpt`) ---------------
@case("ckpt-pickle-as-safetensors")
def _(ws):
    import pickle

    run = ws.run()
    (run / "stage1.safetensors").write_bytes(pickle.dumps({"w": [1, 2, 3]}))
    return ws.generate_cmd(run), ["stage1.safetensors"]


@case("ckpt-truncated-safetensors")
def _(ws):
    run = ws.run()
    data = (run / "stage2.safetensors").read_bytes()
    (run / "stage2.safetensors").write_bytes(data[: len(data) // 2])
    return ws.generate_cmd(run), ["stage2.safetensors"]


@case("ckpt-header-claims-huge-tensor")
def _(ws):
    run = ws.run()
    header = json.dumps({"w": {"dtype": "F32", "shape": [1 << 20, 1 << 20], "data_offsets": [0, 4 << 40]}}).encode()
    (run / "stage1.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 64)
    return ws.generate_cmd(run), ["stage1.safetensors"]


@case("ckpt-wrong-shapes")
def _(ws):
    from safetensors.torch import load_file, save_file

    run = ws.run()
    sd = load_file(str(run / "stage2.safetensors"))
    k = next(k for k, v in sd.items() if v.ndim == 2)
    sd[k] = sd[k][:, :-1].contiguous()
    save_file(sd, str(run / "stage2.safetensors"))
    return ws.generate_cmd(run), ["stage2.safetensors", "shape"]


@case("ckpt-unknown-family")
def _(ws):
    run = ws.run()
    cfg = json.loads((run / "ifmdm.json").read_text())
    (run / "ifmdm.json").write_text(json.dumps({**cfg, "family": "talkinator"}))
    return ["export", "--ckpt", str(run), "--target", "onnx", "--out", str(ws.out / "b")], ["talkinator"]


@case("ckpt-unknown-preset")
def _(ws):
    (ws.inp / "data").mkdir()
    return ["train", "ifmdm", "--preset", "gigantic", "--data", str(ws.inp / "data"), "--out", str(ws.out / "run")], \
        ["gigantic"]


@case("ckpt-config-not-json")
def _(ws):
    run = ws.run()
    (run / "ifmdm.json").write_text("{family: ifmdm")
    return ws.generate_cmd(run), ["ifmdm.json"]


@case("ckpt-folder-missing")
def _(ws):
    return ws.generate_cmd(ws.inp / "no_run"), ["no_run"]
