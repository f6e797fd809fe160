"""The VQTalker motion codec: bit-packed token files, strict reader, encode -> decode."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from edgeth.errors import InputError
from edgeth.models.vqtalker.codec import TokenStream, check_matches, from_bytes, to_bytes


def _stream(n=30, seed=0):
    rng = np.random.default_rng(seed)
    return TokenStream(rng.integers(0, 625, (n, 12, 4)).astype(np.int32), (5, 5, 5, 5), 25)


def test_roundtrip_is_exact_and_payload_hits_the_configured_bitrate():
    s = _stream()
    data = to_bytes(s)
    back = from_bytes(data)
    assert np.array_equal(back.indices, s.indices) and back.levels == s.levels and back.fps == 25
    assert s.bits_per_frame() == 446  # ceil(48 * log2 625)
    assert len(data) == 4 + 4 + 4 + 8 + (30 * 446 + 7) // 8 + 4
    assert 11_145 < s.bits_per_frame() * 25 < 11_145 + 25  # < 1 bit per frame over the configured rate
    edge = TokenStream(np.full((3, 12, 4), 624, np.int32), (5, 5, 5, 5), 25)  # the largest frame value
    assert np.array_equal(from_bytes(to_bytes(edge)).indices, edge.indices)


def _recrc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize("defect,match", [
    (lambda d: d[:-7], "CRC32|truncated"),
    (lambda d: d[:10], "truncated"),
    (lambda d: d[:40] + bytes([d[40] ^ 0x10]) + d[41:], "CRC32"),
    (lambda d: b"XXXX" + d[4:], "not a VQTalker"),
    (lambda d: _recrc(d[:4] + bytes([2]) + d[5:-4]), "version 2"),
    (lambda d: _recrc(d[:-5]), "payload bytes"),
    (lambda d: _recrc(d[:24] + b"\xff" * (len(d) - 28)), "out of range"),
])
def test_defective_files_are_input_errors(defect, match):
    with pytest.raises(InputError, match=match):
        from_bytes(defect(to_bytes(_stream())))


def test_stream_for_another_config_is_refused():
    from edgeth.program import PipelineSpec

    spec = PipelineSpec(kind="vqtalker", programs=(), extra={"quantizer": {"groups": 12, "residual": 4,
                                                                            "levels": [5, 5, 5, 5]}})
    check_matches(_stream(), spec, "x")
    other = TokenStream(np.zeros((4, 6, 4), np.int32), (5, 5, 5, 5), 25)
    with pytest.raises(InputError, match="G=6"):
        check_matches(from_bytes(to_bytes(other)), spec, "x")


def _clip(corpus):
    return sorted(corpus.glob("*.mp4"))[0]


def test_encode_decode_reproduces_the_tokenizer_frames(vqtalker_tiny_run, synth_corpus, tmp_path):
    import torch

    from edgeth.models import get_model
    from edgeth.models.vqtalker.codec import decode_file, encode_video, read_frames

    run = get_model("vqtalker").load(vqtalker_tiny_run)
    clip = _clip(synth_corpus)
    enc = encode_video(vqtalker_tiny_run, clip, tmp_path / "c.motion")
    frames = read_frames(clip, run.cfg.image_size)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()
    want_idx = run.tokenizer.tokenize(x[:1], x)
    assert np.array_equal(enc["indices"], want_idx.numpy())
    assert abs(enc["configured_bps"] - 11145.25) < 0.1 and enc["measured_bps"] > enc["payload_bps"] > 11145
    from edgeth.data.video import write_png

    write_png(tmp_path / "p.png", frames[5])
    dec = decode_file(vqtalker_tiny_run, tmp_path / "p.png", tmp_path / "c.motion", tmp_path / "o.mp4")
    want = run.tokenizer.render(x[5:6], want_idx).permute(0, 2, 3, 1).numpy()
    assert dec["frames"].shape == want.shape and (tmp_path / "o.mp4").stat().st_size > 0
    assert np.abs(dec["frames"] - want).max() < 1e-5


def test_cli_bad_token_files_exit_2_without_output(vqtalker_tiny_run, tmp_path):
    import subprocess
    import sys

    good = to_bytes(_stream())
    for name, data in (("trunc.motion", good[:-9]), ("bad.motion", good[:50] + b"\x00" + good[51:])):
        (tmp_path / name).write_bytes(data)
        out = tmp_path / f"{name}.mp4"
        r = subprocess.run([sys.executable, "-m", "edgeth", "codec", "decode", "--ckpt", str(vqtalker_tiny_run),
                            "--image", str(tmp_path / "missing.png"), str(tmp_path / name), "-o", str(out)],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr and r.stderr.count("\n") == 1
        assert not out.exists() and not list(tmp_path.glob(".*.tmp*"))
