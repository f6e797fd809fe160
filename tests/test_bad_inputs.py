"""The bad-input corpus: every file a user or a device hands edgeth, broken the ways files break.

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
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from bundle_support import assert_clean_error, cli, registered, write_media
from reliability_support import changed, ifmdm_run, snapshot, wav_bytes

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
                "--backend", "torch", "-o", str(self.out / "video.mp4"), *extra]

    def generate_cmd(self, run=None, *extra):
        return ["generate", "--ckpt", str(run or self.run()), "--image", str(self.png), "--audio", str(self.wav),
                "-o", str(self.out / "video.mp4"), "--quiet", *extra]

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


# -- bundles -----------------------------------------------------------------------------------
@case("bundle-corrupt-onnx")
def _(ws):
    b = ws.bundle()
    (b / "onnx" / "renderer.onnx").write_bytes(os.urandom(512))
    ws.rehash("onnx/renderer.onnx")
    return ["verify", str(b), "--backend", "onnxruntime", "--programs-only"], ["renderer.onnx"]


@case("bundle-corrupt-pte")
def _(ws):
    b = ws.bundle()
    if not (b / "executorch").is_dir():
        pytest.skip("executorch cannot export here")
    (b / "executorch" / "renderer.pte").write_bytes(os.urandom(512))
    ws.rehash("executorch/renderer.pte")
    return ["verify", str(b), "--backend", "executorch", "--programs-only"], ["renderer.pte"]


@case("bundle-corrupt-mlpackage")
def _(ws):
    b = ws.bundle()
    pkgs = sorted((b / "coreml").glob("*.mlpackage")) if (b / "coreml").is_dir() else []
    if not pkgs:
        pytest.skip("coremltools cannot export here")
    spec = next(p for p in pkgs[0].rglob("*.mlmodel"))
    spec.write_bytes(spec.read_bytes()[:40])
    return ws.verify_cmd(b), [spec.name]


@case("bundle-tampered-artifact")
def _(ws):
    b = ws.bundle()
    with open(b / "onnx" / "denoiser.onnx", "ab") as f:
        f.write(b"\0")
    return ws.verify_cmd(b), ["onnx/denoiser.onnx", "sha256"]


@case("bundle-missing-golden")
def _(ws):
    b = ws.bundle()
    (b / "golden" / "renderer.npz").unlink()
    return ws.verify_cmd(b), ["golden/renderer.npz", "missing"]


@case("bundle-wrong-golden-shapes")
def _(ws):
    from edgeth.bundle.golden import load_npz, save_npz

    b = ws.bundle()
    g = load_npz(b / "golden" / "renderer.npz")
    save_npz(b / "golden" / "renderer.npz", {k: v[..., :-1] for k, v in g.items()})
    ws.rehash("golden/renderer.npz")
    return ws.verify_cmd(b), ["renderer"]


@case("bundle-future-version")
def _(ws):
    return ws.verify_cmd(ws.manifest(lambda m: m.__setitem__("format_version", 99))), ["version 99", "upgrade"]


@case("bundle-path-outside")
def _(ws):
    def edit(m):
        m["files"]["../../secret.txt"] = "0" * 64
    return ws.verify_cmd(ws.manifest(edit)), ["../../secret.txt"]


@case("bundle-symlink-outside")
def _(ws):
    b = ws.bundle()
    outside = ws.inp / "elsewhere.json"
    shutil.copyfile(b / "reference" / "fixture.json", outside)  # same bytes: the hash alone would pass
    (b / "reference" / "fixture.json").unlink()
    (b / "reference" / "fixture.json").symlink_to(outside)
    return ws.verify_cmd(b), ["reference/fixture.json", "symbolic link"]


def _tar_with(ws, member_name: str) -> Path:
    b = ws.bundle()
    tar = ws.inp / "bundle.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(b, arcname="bundle")
        data = b"boom"
        import io

        ti = tarfile.TarInfo(member_name)
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    return tar


@case("bundle-tar-dotdot-member")
def _(ws):
    return ws.verify_cmd(_tar_with(ws, "bundle/../../escaped.txt")), ["bundle.tar", "unsafe"]


@case("bundle-tar-absolute-member")
def _(ws):
    return ws.verify_cmd(_tar_with(ws, "/tmp/edgeth-absolute.txt")), ["bundle.tar", "unsafe"]


@case("bundle-zip-instead-of-tar")
def _(ws):
    import zipfile

    with zipfile.ZipFile(ws.inp / "bundle.zip", "w") as zf:
        zf.writestr("../evil.txt", "x")
    return ws.verify_cmd(ws.inp / "bundle.zip"), ["bundle.zip"]


@case("bundle-manifest-not-json")
def _(ws):
    b = ws.bundle()
    (b / "manifest.json").write_text('{"format": "edgeth-bundle", ')
    return ws.verify_cmd(b), ["manifest.json"]


# -- device dumps (`edgeth verify --outputs`) --------------------------------------------------
def _dumps(ws, arrays_by_program: dict[str, dict[str, np.ndarray]]) -> Path:
    d = ws.inp / "dumps"
    d.mkdir(exist_ok=True)
    for prog, arrays in arrays_by_program.items():
        np.savez(d / f"{prog}.npz", **arrays)
    return d


def _golden_outputs(ws) -> dict[str, dict[str, np.ndarray]]:
    from edgeth.bundle.golden import load_npz

    b = ws.bundle()
    return {p: {k: v for k, v in load_npz(b / "golden" / f"{p}.npz").items() if k.startswith("out_")}
            for p in ("denoiser", "renderer")}


def _first_out(ws, program: str) -> str:
    return next(k for k in _golden_outputs(ws)[program])


def _verify_dumps(ws, d):
    return ["verify", str(ws.bundle()), "--outputs", str(d), "--target", "onnx"]


@case("dump-no-program")
def _(ws):
    d = ws.inp / "dumps"
    d.mkdir()
    np.save(d / "something_else.npy", np.zeros(3))
    return _verify_dumps(ws, d), ["dumps", "denoiser"]


@case("dump-wrong-shape")
def _(ws):
    g = _golden_outputs(ws)
    k = _first_out(ws, "renderer")
    g["renderer"][k] = g["renderer"][k][..., :-2]
    return _verify_dumps(ws, _dumps(ws, g)), ["renderer", "shape"]


@case("dump-nan")
def _(ws):  # a device that returns NaN failed the check: exit 1, named
    g = _golden_outputs(ws)
    k = _first_out(ws, "denoiser")
    g["denoiser"][k] = np.full_like(g["denoiser"][k], np.nan)
    return _verify_dumps(ws, _dumps(ws, g)), ["denoiser"], 1


@case("dump-extra-arrays")
def _(ws):
    g = _golden_outputs(ws)
    g["renderer"]["out_bogus"] = np.zeros(4)
    return _verify_dumps(ws, _dumps(ws, g)), ["renderer.npz", "out_bogus"]


@case("dump-pickled-npy")
def _(ws):
    d = ws.inp / "dumps"
    name = _first_out(ws, "renderer")[len("out_"):]
    (d / "renderer" / "0").mkdir(parents=True)
    np.save(d / "renderer" / "0" / f"{name}.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return _verify_dumps(ws, d), [f"{name}.npy"]


# -- CLI values --------------------------------------------------------------------------------
@case("cli-steps-0")
def _(ws):
    return ws.run_cmd(None, None, "--steps", "0"), ["--steps"]


@case("cli-negative-guidance")
def _(ws):
    return ws.generate_cmd(ws.inp / "r", "--guidance", "-1"), ["--guidance"]


@case("cli-threads-0")
def _(ws):
    return ws.verify_cmd(None, "--threads", "0"), ["--threads"]


@case("cli-unknown-precision")
def _(ws):
    return ["export", "--ckpt", str(ws.run()), "--precision", "int3", "--out", str(ws.out / "b")], ["int3"]


@case("cli-unknown-budget")
def _(ws):
    return ["export", "--ckpt", str(ws.run()), "--precision", "mixed", "--budget", "vibes=9", "--target", "onnx",
            "--out", str(ws.out / "b")], ["vibes"]


@case("cli-unknown-backend")
def _(ws):
    return ["verify", str(ws.bundle()), "--backend", "tpu9000"], ["tpu9000"]


@case("cli-synth-zero-clips")
def _(ws):
    return ["data", "synth", str(ws.out / "d"), "--clips", "0"], ["--clips"]


# -- the harness ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ifmdm_tiny_fresh(tmp_path_factory) -> Path:
    return ifmdm_run(tmp_path_factory.mktemp("ifmdm_fresh") / "run")


@pytest.fixture
def ws(tmp_path, fixture_bundle, ifmdm_tiny_fresh) -> WS:
    return WS(tmp_path / "case", fixture_bundle["bundle"], ifmdm_tiny_fresh)


def test_corpus_is_big_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name, ws):
    got = CASES[name](ws)
    args, words, code = (*got, 2) if len(got) == 2 else got
    ws.out.mkdir(exist_ok=True)
    before = snapshot(ws.root)
    env_debug = os.environ.pop("EDGETH_DEBUG", None)
    try:
        with registered():
            r = cli(*args)
    finally:
        if env_debug is not None:
            os.environ["EDGETH_DEBUG"] = env_debug
    assert_clean_error(r, code, *words)
    assert not changed(before, ws.root), changed(before, ws.root)  # no output, no temp files, inputs intact
    assert not list(ws.out.iterdir())


# -- unusual but valid: these succeed ------------------------------------------------------------
def _valid_images(ws) -> dict[str, Path]:
    from PIL import Image

    base = Image.open(ws.png)
    out = {}
    g16 = (np.linspace(0, 65535, 48 * 40).reshape(48, 40)).astype(np.uint16)
    Image.fromarray(g16).save(ws.inp / "grey16.png")
    out["16-bit"] = ws.inp / "grey16.png"
    base.convert("CMYK").save(ws.inp / "cmyk.jpg")
    out["cmyk"] = ws.inp / "cmyk.jpg"
    base.convert("RGBA").save(ws.inp / "alpha.png")
    out["alpha"] = ws.inp / "alpha.png"
    return out


def test_unusual_images_read_correctly(ws):
    from edgeth.data.video import read_image

    imgs = _valid_images(ws)
    for name, p in imgs.items():
        a = read_image(p)
        assert a.shape[-1] == 3 and a.dtype == np.float32, name
    g = read_image(imgs["16-bit"])  # scaled from 16 bits, not clipped at 255
    assert 0.45 < g.mean() < 0.55 and g.max() > 0.99 and g.min() < 0.01


def test_unusual_audio_reads(ws):
    from scipy.io import wavfile

    from edgeth.data.video import read_audio

    t = np.arange(44100) / 44100
    tone = np.sin(2 * np.pi * 300 * t)
    cases = {
        "u8.wav": wav_bytes((tone * 100 + 128).astype(np.uint8), 16000, bits=8),
        "f32.wav": wav_bytes((0.5 * tone).astype("<f4"), 44100, fmt=3, bits=32),
        "s24.wav": wav_bytes(np.frombuffer(b"".join(int(v).to_bytes(3, "little", signed=True)
                                                    for v in (tone[:16000] * 4e6).astype(int)), np.uint8), 16000, bits=24),
    }
    for name, data in cases.items():
        a = read_audio(ws.file(name, data))
        assert a.ndim == 1 and a.size >= 16000 * 0.9 and np.abs(a).max() > 0.1, name
    wavfile.write(ws.inp / "st.wav", 44100, (np.stack([tone] * 2, 1) * 9000).astype(np.int16))
    wavfile.write(ws.inp / "six.wav", 48000, np.tile((0.3 * tone[:48000, None]).astype(np.float32), (1, 6)))
    assert abs(read_audio(ws.inp / "st.wav").size - 16000) <= 1
    assert abs(read_audio(ws.inp / "six.wav").size - 44100 * 16000 // 48000) <= 2


def test_m4a_audio_and_valid_images_run_end_to_end(ws):
    import av

    with av.open(str(ws.inp / "talk.m4a"), "w", format="mp4") as c:
        st = c.add_stream("aac", rate=16000)
        st.layout = "mono"
        tone = (0.3 * np.sin(2 * np.pi * 200 * np.arange(16000) / 16000)).astype(np.float32)
        for i in range(0, 16000, 1024):
            fr = av.AudioFrame.from_ndarray(tone[None, i:i + 1024].copy(), format="fltp", layout="mono")
            fr.sample_rate, fr.pts = 16000, i
            for pkt in st.encode(fr):
                c.mux(pkt)
        for pkt in st.encode():
            c.mux(pkt)
    with registered():
        for name, img in _valid_images(ws).items():
            r = cli(*ws.run_cmd(img, ws.inp / "talk.m4a"))
            assert r.returncode == 0, (name, r.stderr)
            assert (ws.out / "video.mp4").stat().st_size > 0
