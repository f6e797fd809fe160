"""The video writer keeps small faces intact, and the delivered-quality figures read the mp4 a user gets."""
from __future__ import annotations

import numpy as np
import pytest

from edgeth.data.video import QUALITIES, downscale_box, read_video, write_mp4
from edgeth.errors import InputError


@pytest.fixture(scope="module")
def face64():
    """A 64 px synthetic talking head (1.2 s) and its ground-truth mouth opening."""
    from edgeth.data.render import render_frames, sample_identity
    from edgeth.data.synth import FPS, sample_motion, sample_voice, speak

    rng = np.random.default_rng([5, 18])
    ident, n = sample_identity(rng), 30
    _, tracks, _ = speak(rng, n, sample_voice(rng), fps=FPS)
    gt = sample_motion(rng, n, tracks)
    return render_frames(ident, gt, 64, supersample=2), gt["mouth_open"]


def _psnr(a, b):
    return 10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def test_standard_upscales_small_frames_and_keeps_them(face64, tmp_path):
    frames, _ = face64
    dec, _ = read_video(write_mp4(tmp_path / "s.mp4", frames, 25))
    assert dec.shape[1:] == (256, 256, 3)  # 64 px upscaled x4 (nearest) so 4:2:0 chroma stays per source pixel
    back = downscale_box(dec, 4)
    compact, _ = read_video(write_mp4(tmp_path / "c.mp4", frames, 25, quality="compact"))
    assert _psnr(back, frames) >= 40.0
    assert _psnr(back, frames) > _psnr(compact, frames) + 5.0  # the old native-size CRF 17 loses the face


def test_lossless_is_bit_exact_with_audio(face64, tmp_path):
    frames, _ = face64
    p = write_mp4(tmp_path / "l.mp4", frames, 25, audio=np.zeros(16000, np.float32), quality="lossless")
    dec, fps = read_video(p)
    assert fps == 25 and np.array_equal(dec, frames)


def test_unknown_quality_names_the_valid_ones(face64, tmp_path):
    with pytest.raises(InputError, match="standard, lossless, compact"):
        write_mp4(tmp_path / "x.mp4", face64[0], 25, quality="best")
    assert not (tmp_path / "x.mp4").exists()
    assert set(QUALITIES) == {"standard", "lossless", "compact"}


def test_clip_quality_reads_the_delivered_file(face64, tmp_path):
    """A frozen face correlates with nothing and has ~0 amplitude; the real clip itself has ratio 1."""
    from edgeth.data.delivered import clip_quality

    frames, gt = face64
    same = clip_quality(frames, gt, frames.astype(np.float32) / 255, tmp_path, "same", quality="lossless")
    assert same["lip_r_delivered"] == pytest.approx(same["lip_r_real"], abs=1e-6) and same["lip_r_real"] > 0.8
    assert same["amplitude_delivered"]["mouth_open"] == pytest.approx(1.0, abs=1e-3)
    frozen = clip_quality(frames, gt, np.repeat(frames[:1], len(frames), 0) / 255.0, tmp_path, "frozen")
    assert abs(frozen["lip_r_delivered"]) < 0.3 and frozen["amplitude_delivered"]["mouth_open"] < 0.1
    from PIL import Image  # the strip: real (top) over delivered (bottom), 8 frames, x2

    with Image.open(frozen["strip"]) as im:
        assert im.size == (8 * 64 * 2, 2 * 64 * 2)


def _families() -> list[str]:
    from edgeth.models import model_names

    return sorted(model_names())


@pytest.mark.parametrize("family", _families())
def test_every_family_gets_the_same_delivered_figures(family, tmp_path):
    """The one benchmark function runs every registered family's pipeline and reads the mp4s it
    writes: an untrained model renders a still face, and its amplitude ratios say so."""
    from edgeth.data.dataset import load_corpus
    from edgeth.data.delivered import family_quality, summary_lines
    from edgeth.data.synth import generate_corpus
    from edgeth.models import get_model

    generate_corpus(tmp_path / "c", clips=2, seconds=1.2, size=64, seed=0, lossless=True, progress=False,
                    val_fraction=0.5)
    clips = load_corpus(tmp_path / "c", size=64, split="val")
    q = family_quality(family, get_model(family).fresh("tiny"), clips, tmp_path / "q")
    assert q["lip_r_real"] > 0.8 and q["frames"] == clips[0].n_frames
    assert q["amplitude_delivered"]["mouth_open"] < 0.1 and np.isfinite(q["lip_r_delivered"])
    assert all((tmp_path / "q" / f"{family}_clip00.{ext}").is_file() for ext in ("mp4", "png"))
    assert q["extras"]["windows"] >= 1 and any("delivered mp4" in line for line in summary_lines(q, "test"))

