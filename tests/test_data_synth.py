"""The synthetic corpus: determinism, identity split, files like a real dataset, mp4 round trip."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgeth.data.dataset import load_corpus
from edgeth.data.synth import generate_corpus, sample_inputs
from edgeth.data.video import read_audio, read_video


def test_layout_and_split_by_identity(synth_corpus):
    m = json.loads((synth_corpus / "manifest.json").read_text())
    assert m["generator_version"] >= 1 and m["seed"] == 0 and len(m["clips"]) == 8
    for e in m["clips"]:
        for ext in ("mp4", "wav", "json", "npz"):
            assert (synth_corpus / f"{e['name']}.{ext}").is_file()
    train, val = set(m["splits"]["train"]), set(m["splits"]["val"])
    assert train and val and not (train & val)  # held-out identities
    gt = json.loads((synth_corpus / "clip_0000.json").read_text())["gt"]
    assert set(gt) >= {"mouth_open", "mouth_width", "blink", "yaw", "pitch", "roll", "gaze_x", "gaze_y"}
    assert len(gt["mouth_open"]) == 100


def test_same_seed_same_clip_and_different_seed_differs(tmp_path, synth_corpus):
    generate_corpus(tmp_path / "a", clips=2, seconds=1.0, size=64, seed=0, lossless=True, progress=False)
    a = np.load(tmp_path / "a" / "clip_0001.npz")["frames"]
    ref = np.load(synth_corpus / "clip_0001.npz")["frames"][: len(a)]
    # clip 1 is seeded by (seed, index) alone: the same in a 2-clip and an 8-clip corpus (first second)
    gt_a = json.loads((tmp_path / "a" / "clip_0001.json").read_text())["gt"]
    generate_corpus(tmp_path / "b", clips=2, seconds=1.0, size=64, seed=0, lossless=True, progress=False)
    gt_b = json.loads((tmp_path / "b" / "clip_0001.json").read_text())["gt"]
    b = np.load(tmp_path / "b" / "clip_0001.npz")["frames"]
    assert gt_a == gt_b and np.array_equal(a, b)
    assert a.shape == (25, 64, 64, 3) and ref.shape[1:] == a.shape[1:]
    generate_corpus(tmp_path / "c", clips=2, seconds=1.0, size=64, seed=1, lossless=True, progress=False)
    assert not np.array_equal(np.load(tmp_path / "c" / "clip_0001.npz")["frames"], a)


def test_motion_is_smooth_and_mouth_moves(synth_corpus):
    clips = load_corpus(synth_corpus, split="train")
    for c in clips:
        assert c.gt["mouth_open"].std() > 0.05  # the mouth moves with speech
        assert np.abs(np.diff(c.gt["yaw"])).max() < 3.0  # head pose is smooth (degrees per frame)
    f = clips[0].frames.astype(np.float32)
    assert np.abs(np.diff(f, axis=0)).mean() < 8.0  # consecutive frames are close (sub-pixel motion)


def test_mp4_round_trip_and_alignment(synth_corpus):
    frames, fps = read_video(synth_corpus / "clip_0002.mp4")
    lossless = np.load(synth_corpus / "clip_0002.npz")["frames"]
    assert fps == 25 and frames.shape == lossless.shape
    psnr = 10 * np.log10(255**2 / np.mean((frames.astype(np.float64) - lossless) ** 2))
    assert psnr > 30
    wav = read_audio(synth_corpus / "clip_0002.wav")
    track = read_audio(synth_corpus / "clip_0002.mp4")
    assert wav.shape == (64000,)
    n = 60000
    assert np.corrcoef(wav[1000:n], track[1000:n])[0, 1] > 0.95  # the muxed track is the same speech
    c = load_corpus(synth_corpus, split="val")[0]
    assert c.audio.shape[0] == 640 * c.n_frames and c.frames.dtype == np.uint8


def test_load_resizes(synth_corpus):
    c = load_corpus(synth_corpus, size=32, split="val")[0]
    assert c.frames.shape[1:] == (32, 32, 3)


def test_sample_inputs_is_a_held_out_portrait(tmp_path):
    from edgeth.data.video import read_image

    png, wav, gt = sample_inputs(tmp_path, size=64, seconds=2.0, seed=0)
    img = read_image(png, 64)
    assert img.shape == (64, 64, 3) and 0 <= img.min() and img.max() <= 1
    assert read_audio(wav).shape == (32000,) and gt["mouth_open"].shape == (50,)


def test_synth_rejects_bad_arguments(tmp_path):
    from edgeth.errors import InputError

    with pytest.raises(InputError):
        generate_corpus(tmp_path / "x", clips=1, progress=False)
    (tmp_path / "notcorpus").mkdir()
    (tmp_path / "notcorpus" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not a corpus"):
        generate_corpus(tmp_path / "notcorpus", clips=2, seconds=1, size=32, progress=False)
    assert (tmp_path / "notcorpus" / "keep.txt").read_text() == "mine"


def test_load_corpus_cache_gives_copies_and_sees_a_rewrite(tmp_path):
    root = tmp_path / "c"
    generate_corpus(root, clips=2, seconds=0.4, size=32, seed=0, lossless=True, progress=False)
    a = load_corpus(root)
    a[0].frames[:] = 0
    a[0].gt["mouth_open"][:] = -1
    b = load_corpus(root)
    assert b[0].frames.any() and b[0].gt["mouth_open"].min() >= 0  # the cache was not mutated
    generate_corpus(root, clips=2, seconds=0.4, size=32, seed=1, lossless=True, progress=False)
    c = load_corpus(root)
    assert not np.array_equal(c[0].frames, b[0].frames)  # a rewritten corpus is reloaded


def test_interrupted_synth_leaves_nothing_behind(tmp_path, monkeypatch):
    import edgeth.data.synth as synth

    real, calls = synth.make_clip, []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(synth, "make_clip", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_corpus(tmp_path / "d", clips=3, seconds=0.4, size=32, progress=False)
    assert list(tmp_path.iterdir()) == []  # no corpus, no half-written clip, no temp folder
