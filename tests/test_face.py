"""Face detection, crop to the trained framing, paste-back (edgeth.runtime_py.face), and their
wiring into `edgeth run`, `edgeth generate` and real-clip loading.

The real face is scikit-image's astronaut (Eileen Collins, NASA, public domain), a 512x512
upper-body photo bundled inside the scikit-image wheel (no download)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import bundle_support as bs
from edgeth.errors import InputError
from edgeth.runtime_py.face import (DEFAULT_FRAMING, Box, crop, crop_box, feather_mask, framing_from_spec, paste_back,
                                    prepare_portrait, smooth_boxes, stable_box)
from edgeth.runtime_py.face_detect import detect_face


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()  # uint8 [512, 512, 3]


def _composite(photo: np.ndarray, side: int, x: int, y: int, canvas=(480, 640)) -> np.ndarray:
    """The photo shrunk to side x side and placed at (x, y) on a plain gradient canvas."""
    from PIL import Image

    h, w = canvas
    bg = np.linspace(60, 180, w, dtype=np.float32)[None, :, None] * np.ones((h, 1, 3), np.float32)
    out = bg.astype(np.uint8)
    out[y:y + side, x:x + side] = np.asarray(Image.fromarray(photo).resize((side, side), Image.BOX))
    return out


def _placed(face: Box, scale: float, x: int, y: int) -> Box:
    return Box(x + face.x * scale, y + face.y * scale, face.w * scale, face.h * scale)


@pytest.mark.parametrize("side,x,y", [(200, 300, 150), (256, 40, 200)])
def test_small_face_in_a_large_canvas_is_found_and_cropped_where_placed(astronaut, side, x, y):
    face0 = detect_face(astronaut)
    assert 60 < face0.w < 140 and face0.y < 200  # the face, not the whole photo (the face is ~a fifth of it)
    canvas = _composite(astronaut, side, x, y)
    want = _placed(face0, side / 512, x, y)
    got = detect_face(canvas)
    # centre within 3 px; size within one step of Haar's 1.1x scale pyramid
    assert np.hypot(got.center[0] - want.center[0], got.center[1] - want.center[1]) <= 3, (got, want)
    assert abs(got.w / want.w - 1) <= 0.11, (got, want)
    box = crop_box(got)
    fx, fy = (got.center[0] - box.x) / box.w, (got.center[1] - box.y) / box.h
    assert abs(fx - DEFAULT_FRAMING.center_x) < 1e-6 and abs(fy - DEFAULT_FRAMING.center_y) < 1e-6


def test_no_face_is_a_clean_error():
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="no face found") as e:
        prepare_portrait(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8), 64)
    assert "--crop" in e.value.fix and "--no-crop" in e.value.fix


def test_paste_back_leaves_everything_outside_the_mask_bit_identical():
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    box = Box(100, -20, 80, 80)  # partly above the photo
    frames = np.full((3, 32, 32, 3), 0.25, np.float32)
    frames[1] = 0.75
    out = paste_back(photo, frames, box)
    assert out.shape == (3, 120, 160, 3) and out.dtype == np.uint8
    m = np.zeros((120, 160), np.float32)
    m[0:60, 100:160] = feather_mask(80, 80)[20:80, 0:60]
    assert (out[:, m == 0] == photo[m == 0]).all()
    assert (m == 0).sum() > 120 * 160 * 0.7 and (m == 1).sum() > 500
    assert (out[0][m == 1] == 64).all() and (out[1][m == 1] == 191).all()  # the generated frame inside
    ramp = (m > 0) & (m < 1)
    lo, hi = np.minimum(photo, 64)[ramp], np.maximum(photo, 64)[ramp]
    assert ((out[0][ramp] >= lo) & (out[0][ramp] <= hi)).all()  # a blend of the two in the feather


def test_stable_and_smoothed_boxes():
    dets = [Box(100, 50, 40, 40), None, Box(102, 49, 40, 40), Box(300, 300, 90, 90), Box(101, 51, 42, 42)]
    s = stable_box(dets)
    assert abs(s.center[0] - 121.5) < 1.01 and abs(s.w - 41) < 1.01  # the outlier does not move it
    assert stable_box([None, None]) is None
    sm = smooth_boxes([None, Box(0, 0, 10, 10), None, Box(10, 0, 10, 10)], alpha=0.5)
    assert sm[0] is None and sm[2] == sm[1] and abs(sm[3].center[0] - 10) < 1e-6


def test_framing_is_the_synthetic_corpus_head_placement():
    from edgeth.data.framing import measure_framing

    m = measure_framing(identities=40, size=256)
    assert m["detected"] >= 8, m
    assert abs(m["center_x"] - DEFAULT_FRAMING.center_x) < 0.02, m
    assert abs(m["center_y"] - DEFAULT_FRAMING.center_y) < 0.03, m
    assert abs(m["size"] - DEFAULT_FRAMING.size) < 0.06, m


def test_run_config_and_pipeline_spec_record_the_framing():
    from edgeth.models import get_model
    from edgeth.models.ifmdm.run import run_json

    fam = get_model("ifmdm")
    run = fam.fresh("tiny")
    spec = fam.pipeline(run)
    assert framing_from_spec(spec.to_json()) == DEFAULT_FRAMING
    assert spec.normalization["framing"] == DEFAULT_FRAMING.to_json()
    assert run_json(run.cfg, run.audio, run.stats, ["stage1"])["framing"] == DEFAULT_FRAMING.to_json()
    assert framing_from_spec({"normalization": {}}) == DEFAULT_FRAMING  # older bundles


def test_real_clip_is_cropped_with_one_stable_box(astronaut, tmp_path):
    from edgeth.data.dataset import load_corpus
    from edgeth.data.real import clip_crop_box
    from edgeth.data.video import read_video, write_mp4

    rng = np.random.default_rng(2)
    jitter = rng.integers(-2, 3, (25, 2))  # a hand-held camera
    frames = np.stack([_composite(astronaut, 200, 300 + dx, 150 + dy) for dx, dy in jitter])
    write_mp4(tmp_path / "talk.mp4", frames, fps=25, audio=np.zeros(16000, np.float32))
    (clip,) = load_corpus(tmp_path, size=64)
    decoded, _ = read_video(tmp_path / "talk.mp4")
    box = clip_crop_box(decoded, "talk.mp4")
    want = crop_box(_placed(detect_face(astronaut), 200 / 512, 300, 150))
    assert np.hypot(box.center[0] - want.center[0], box.center[1] - want.center[1]) <= 3, (box, want)
    assert abs(box.w / want.w - 1) <= 0.11, (box, want)
    assert clip.frames.shape == (25, 64, 64, 3)
    np.testing.assert_array_equal(clip.frames, np.stack([crop(f, box, 64) for f in decoded]))  # one box, every frame


# -- the CLI: `edgeth run` on the fixture bundle, `edgeth generate` on the tiny IF-MDM run ----------
@pytest.fixture(scope="module")
def media(astronaut, tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("face_media")
    _, wav = bs.write_media(root)
    photo = root / "astronaut.png"
    Image.fromarray(astronaut).save(photo)
    noface = root / "noise.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(noface)
    return photo, wav, noface


def test_cli_run_crops_pastes_and_reports_the_box(fixture_bundle, media, astronaut, tmp_path):
    from edgeth.data.video import read_video

    photo, wav, noface = media
    with bs.registered():
        # lossless: the file keeps the photo's exact size (the standard writer upscales small frames)
        base = ["run", str(fixture_bundle["bundle"]), "--audio", str(wav), "--backend", "torch",
                "--video-quality", "lossless"]
        r = bs.cli(*base, "--image", str(photo), "-o", str(tmp_path / "a.mp4"), "--json")
        assert r.returncode == 0, r.stderr[-2000:]
        s = json.loads(r.stdout)
        want = crop_box(detect_face(astronaut))
        assert s["crop"]["mode"] == "detected" and s["video_size"] == [512, 512]
        assert np.allclose(s["crop"]["box"], [want.x, want.y, want.w, want.h], atol=1)
        frames, fps = read_video(tmp_path / "a.mp4")
        assert frames.shape[1:] == (512, 512, 3) and fps == 25 and len(frames) == s["frames"]
        r = bs.cli(*base, "--image", str(photo), "-o", str(tmp_path / "b.mp4"), "--json", "--crop", "100,50,200,200",
                   "--no-paste")
        assert r.returncode == 0, r.stderr[-2000:]
        s = json.loads(r.stdout)
        assert s["crop"]["mode"] == "forced" and s["crop"]["box"] == [100, 50, 200, 200] and s["video_size"] == [32, 32]
        assert read_video(tmp_path / "b.mp4")[0].shape[1:] == (32, 32, 3)
        r = bs.cli(*base, "--image", str(noface), "-o", str(tmp_path / "c.mp4"), "--json", "--no-crop")
        assert r.returncode == 0, r.stderr[-2000:]
        s = json.loads(r.stdout)
        assert s["crop"]["mode"] == "centre" and s["crop"]["box"] == [16, 0, 96, 96] and s["video_size"] == [128, 96]
        bs.assert_clean_error(bs.cli(*base, "--image", str(noface), "-o", str(tmp_path / "d.mp4")), 2,
                              "no face found", "--crop", "--no-crop")
        bs.assert_clean_error(bs.cli(*base, "--image", str(photo), "-o", str(tmp_path / "d.mp4"), "--crop", "1,2,3"),
                              2, "x,y,w,h")
        bs.assert_clean_error(bs.cli(*base, "--image", str(photo), "-o", str(tmp_path / "d.mp4"), "--crop",
                                     "1,2,3,4", "--no-crop"), 2, "contradict")
    assert not (tmp_path / "d.mp4").exists()


def test_cli_generate_writes_the_photo_resolution(ifmdm_tiny_run, media, tmp_path):
    from PIL import Image

    from edgeth.data.video import read_video

    photo, wav, _ = media
    out = tmp_path / "g.mp4"
    r = bs.cli("generate", "--ckpt", str(ifmdm_tiny_run), "--image", str(photo), "--audio", str(wav), "-o", str(out),
               "--steps", "2", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads(r.stdout)
    assert s["crop"]["mode"] == "detected" and s["crop"]["model_size"] == 64 and s["video_size"] == [512, 512]
    frames, _ = read_video(out)
    assert frames.shape[1:] == (512, 512, 3)
    box = Box(*s["crop"]["box"])
    photo_px = np.asarray(Image.open(photo).convert("RGB")).astype(float)
    outside = np.ones((512, 512), bool)
    outside[max(0, int(box.y)):int(box.y + box.h), max(0, int(box.x)):int(box.x + box.w)] = False
    assert np.abs(frames[-1].astype(float) - photo_px)[outside].mean() < 4  # the background stays still (H.264 noise only)
