"""Bad data gets one clear line and exit 2; odd-but-valid audio is resampled, not rejected."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.io import wavfile

from edgeth.data.dataset import load_corpus
from edgeth.data.video import center_crop_resize, read_audio, read_video, write_mp4
from edgeth.errors import InputError


def _edgeth(*args):
    env = dict(os.environ)
    env.pop("EDGETH_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "edgeth", *map(str, args)], capture_output=True, text=True, env=env)


def _one_error_line(r):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr


@pytest.fixture(scope="module")
def real_folder(tmp_path_factory):
    """A real-style folder: an mp4 with its audio track, an mp4 + 44.1 kHz stereo sidecar wav,
    a corrupt mp4 and a silent-only mp4 (no audio at all)."""
    root = tmp_path_factory.mktemp("real")
    rng = np.random.default_rng(0)
    frames = (rng.random((30, 72, 96, 3)) * 255).astype(np.uint8)
    write_mp4(root / "talk_a.mp4", frames, fps=30, audio=(0.2 * rng.standard_normal(16000)).astype(np.float32),
              quality="compact")  # native size, like a camera clip
    write_mp4(root / "talk_b.mp4", frames[:25], fps=25, quality="compact")
    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], 1) * 0.3
    wavfile.write(root / "talk_b.wav", 44100, (stereo * 32767).astype(np.int16))
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(300))
    write_mp4(root / "mute.mp4", frames[:10], fps=25, quality="compact")
    return root


def test_44k_stereo_wav_is_resampled(real_folder):
    a = read_audio(real_folder / "talk_b.wav")
    assert a.ndim == 1 and abs(a.shape[0] - 16000) <= 1
    spec = np.abs(np.fft.rfft(a))
    assert abs(np.argmax(spec) * 16000 / a.shape[0] - 440) < 3  # still a 440 Hz tone after resampling


def test_real_folder_loads_usable_clips_and_counts_skips(real_folder):
    with pytest.warns(UserWarning, match="skipped 2 of 4"):
        clips = load_corpus(real_folder, size=64, face_crop=False)  # noise frames: no face to crop to
    assert sorted(c.name for c in clips) == ["talk_a", "talk_b"]
    for c in clips:
        assert c.frames.shape[1:] == (64, 64, 3) and c.gt is None
        assert c.fps == 25 and c.audio.shape[0] == 640 * c.n_frames
    a = next(c for c in clips if c.name == "talk_a")
    assert a.n_frames == 25  # 1 s at 30 fps, retimed to 25 fps
    src, _ = read_video(real_folder / "talk_a.mp4")
    assert np.abs(a.frames[0].astype(int) - center_crop_resize(src[0], 64)).mean() < 1  # first frame kept
    with pytest.raises(InputError):
        load_corpus(real_folder, size=64, strict=True, face_crop=False)
    with pytest.warns(UserWarning, match="no face found in talk_a.mp4"), pytest.raises(InputError, match="no clips"):
        load_corpus(real_folder, size=64)  # face crop (the default) skips clips without a face


def test_inspect_reports_facts_and_problems(real_folder, synth_corpus):
    r = _edgeth("data", "inspect", real_folder, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["clips"] == 4 and info["usable"] == 2 and info["kind"] == "real"
    assert 44100 in info["audio_rates"] and "96x72" in info["resolutions"]
    assert any("broken.mp4" in p for p in info["problems"]) and any("mute.mp4" in p for p in info["problems"])
    _one_error_line(_edgeth("data", "inspect", real_folder, "--strict"))
    r = _edgeth("data", "inspect", synth_corpus)
    assert r.returncode == 0 and "8 clips (synthetic)" in r.stdout


def test_missing_empty_and_corrupt_inputs_fail_cleanly(tmp_path, real_folder):
    _one_error_line(_edgeth("data", "inspect", tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    _one_error_line(_edgeth("data", "inspect", tmp_path / "empty"))
    with pytest.raises(InputError, match="no clips"):
        load_corpus(tmp_path / "empty")
    with pytest.raises(InputError, match="cannot decode|no decodable|no video"):
        read_video(real_folder / "broken.mp4")


def test_synth_cli_writes_a_corpus(tmp_path):
    r = _edgeth("data", "synth", tmp_path / "d", "--clips", 2, "--seconds", 1, "--size", 32)
    assert r.returncode == 0, r.stderr
    assert "wrote 2 clips" in r.stdout and (tmp_path / "d" / "manifest.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_retime_to_25_fps_keeps_time():
    from edgeth.data.dataset import retime

    f = np.arange(60)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)  # frame i holds value i
    assert retime(f, 25.0) is f
    f50 = retime(f, 50.0)[:, 0, 0, 0]  # 1.2 s at 50 fps -> 30 frames, every other one
    assert f50.tolist() == list(range(1, 60, 2))
    f30 = retime(f, 30.0)[:, 0, 0, 0]  # 2 s at 30 fps -> 50 frames: the one on screen at each frame's centre
    centre = (np.arange(50) + 0.5) * 1.2  # in source frames
    assert len(f30) == 50 and np.all(np.diff(f30) >= 1) and np.all((f30 <= centre) & (centre < f30 + 1))
