"""The bad-input corpus: every file a user or a device hands edgeth, broken the ways files break.

Each case builds its input in a fresh folder (no binary blobs in the repo), runs the CLI
in-process and asserts: the documented exit code (2: bad input), exactly one
`error: … — what to do` line that names the file, no traceback, and nothing written or
changed anywhere in the case's folder (no output file, no temp leftovers, inputs untouched).
Unusual-but-valid inputs (16-bit, CMYK, alpha images; 8/24-bit, float, 6-channel, 44.1 kHz
stereo wav; m4a audio) must succeed instead. Image, audio, clip and checkpoint cases live in
tests/bad_input_cases.py; bundle, device-dump and CLI-value cases here.
"""
from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from bad_input_cases import CASES, WS, case
from bundle_support import assert_clean_error, cli, registered
from reliability_support import changed, ifmdm_run, snapshot, wav_bytes


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
