"""Video writer benchmark (printed, not asserted): what each encoder setting does to a small face.

For each candidate setting and frame size (64, 256, 512 px) it writes a synthetic held-out
talking head (edgeth.data.synth) with write_mp4, decodes the file and reports
  - PSNR of the decoded frames against the raw frames (decoded frames box-averaged back to the
    source size when the setting upscales), and the file size;
  - lip sync on the *decoded* file for a nearly still mouth (ground-truth opening scaled to
    10 %, about what a weak generator produces): Pearson r of the motion probe's opening vs the
    ground truth, raw vs decoded, and the decoded/raw ratio of the probe's opening std.

    python benchmarks/video_writer.py [--sizes 64,256,512] [--seconds 3]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from edgeth.data.video import QUALITIES, VideoQuality

# the shipped presets plus the alternatives they were picked against
CANDIDATES = (
    *QUALITIES.values(),
    VideoQuality("420-crf10-native", "libx264", "yuv420p", (("crf", "10"), ("preset", "medium")), 0, "no upscale"),
    VideoQuality("420-crf17-up256", "libx264", "yuv420p", (("crf", "17"), ("preset", "medium")), 256, "CRF 17, upscaled"),
    VideoQuality("444-crf10-native", "libx264", "yuv444p", (("crf", "10"), ("preset", "medium")), 0,
                 "High 4:4:4 Predictive: not playable in Safari/QuickTime/most phones"),
)


def clip(size: int, seconds: float, mouth_scale: float, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """(frames uint8 [T,S,S,3], ground-truth mouth opening [T]) of an identity no corpus uses."""
    from edgeth.data.render import render_frames, sample_identity
    from edgeth.data.synth import FPS, sample_motion, sample_voice, speak

    rng = np.random.default_rng([seed, 99])
    ident, n = sample_identity(rng), int(round(seconds * FPS))
    _, tracks, _ = speak(rng, n, sample_voice(rng), fps=FPS)
    gt = sample_motion(rng, n, tracks)
    gt["mouth_open"] = gt["mouth_open"] * mouth_scale
    return render_frames(ident, gt, size, supersample=2 if size <= 96 else 1), gt["mouth_open"]


def psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def measure(q: VideoQuality, frames: np.ndarray, gt: np.ndarray, work: Path) -> dict:
    from edgeth.data.probe import measure as probe, pearson
    from edgeth.data.video import downscale_box, read_video, upscale_factor, write_mp4

    path = write_mp4(work / f"{q.name}_{frames.shape[1]}.mp4", frames, 25, quality=q)
    dec, _ = read_video(path)
    k = upscale_factor(frames.shape[1], frames.shape[2], q.min_side)
    back = downscale_box(dec, k)[:, :frames.shape[1], :frames.shape[2]]
    raw_m, dec_m = probe(frames)["mouth_open"], probe(dec)["mouth_open"]
    return {"quality": q.name, "size": frames.shape[1], "psnr_db": psnr_u8(back, frames), "kb": path.stat().st_size / 1024,
            "r_raw": pearson(raw_m, gt), "r_decoded": pearson(dec_m, gt),
            "mouth_std_ratio": float(dec_m.std() / max(raw_m.std(), 1e-9)), "decoded_side": dec.shape[1]}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="64,256,512")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--mouth-scale", type=float, default=0.1)
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for size in (int(s) for s in args.sizes.split(",")):
            frames, gt = clip(size, args.seconds, args.mouth_scale)
            rows += [measure(q, frames, gt, Path(d)) for q in CANDIDATES]
    print(f"\n{'quality':<18} {'size':>5} {'PSNR dB':>8} {'KB':>8} {'r raw':>6} {'r mp4':>6} {'mouth std mp4/raw':>18}")
    for r in rows:
        print(f"{r['quality']:<18} {r['size']:>5} {r['psnr_db']:8.2f} {r['kb']:8.1f} {r['r_raw']:6.3f} "
              f"{r['r_decoded']:6.3f} {r['mouth_std_ratio']:18.2f}")
    return rows


if __name__ == "__main__":
    main()
