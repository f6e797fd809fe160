"""Quality as the viewer sees it: lip sync and liveliness of generated video, raw and as delivered.

Lip-sync correlation alone hides a nearly frozen face (a mouth that moves 4 % as much as the
real one can still correlate). So for every held-out clip this measures, with the motion probe
(edgeth.data.probe):
  - lip sync r (probe mouth opening vs the ground-truth opening) on the generator's raw float
    frames AND on the frames decoded from the mp4 a user gets (edgeth.data.video.write_mp4);
  - amplitude ratios: std of the probe's mouth opening, blink, yaw, pitch and roll on the
    generated video over the same std on the real clip (1.0 = as lively as the real speaker);
  - PSNR of the decoded file against the raw frames;
and saves a frame strip (real clip on top, delivered video below) as PNG beside the numbers.

family_quality runs any registered family's PipelineSpec driver on the torch reference (the
path `edgeth generate` takes), so every family's quality benchmark shares this one function.

Shape legend: T frames, H/W pixels, K strip frames.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

AMPLITUDE_KEYS = ("mouth_open", "blink", "yaw", "pitch", "roll")


def amplitude_ratios(gen: dict[str, np.ndarray], real: dict[str, np.ndarray]) -> dict[str, float]:
    """std of each probe output on the generated video over the same std on the real clip."""
    return {k: float(np.std(gen[k]) / max(float(np.std(real[k])), 1e-6)) for k in AMPLITUDE_KEYS}


def frame_strip(rows: Sequence[np.ndarray], k: int = 8, scale: int = 2) -> np.ndarray:
    """rows: videos uint8 [T,H,W,3] of one size -> uint8 image [rows*H*s, K*W*s, 3] of K evenly spaced frames."""
    n = min(len(r) for r in rows)
    idx = np.linspace(0, n - 1, min(k, n)).round().astype(int)
    img = np.concatenate([np.concatenate(list(np.asarray(r)[idx]), axis=1) for r in rows], axis=0)
    return img.repeat(scale, 0).repeat(scale, 1) if scale > 1 else img


def clip_quality(real: np.ndarray, gt_mouth: np.ndarray, generated: np.ndarray, out_dir: Path, name: str, *,
                 fps: int = 25, audio: np.ndarray | None = None, quality: str = "standard") -> dict[str, Any]:
    """real uint8 [T,H,W,3], gt_mouth [T], generated float [T',H,W,3] in [0,1] -> figures; writes
    out_dir/name.mp4 (the delivered file) and out_dir/name.png (real over delivered)."""
    from edgeth.data.probe import measure, pearson
    from edgeth.data.video import downscale_box, read_video, to_uint8, upscale_factor, video_quality, write_mp4, write_png

    out_dir = Path(out_dir)
    n = min(len(real), len(generated), len(gt_mouth))
    raw = to_uint8(np.asarray(generated)[:n])
    mp4 = write_mp4(out_dir / f"{name}.mp4", raw, fps, audio, quality=quality)
    dec, _ = read_video(mp4)
    k = upscale_factor(raw.shape[1], raw.shape[2], video_quality(quality).min_side)
    dec = downscale_box(dec, k)[:n, :raw.shape[1], :raw.shape[2]]
    p_real, p_raw, p_dec = measure(real[:n]), measure(raw), measure(dec)
    gt = np.asarray(gt_mouth)[:n]
    mse = float(np.mean((dec.astype(np.float64) - raw.astype(np.float64)) ** 2))
    strip = out_dir / f"{name}.png"
    write_png(strip, frame_strip([np.asarray(real)[:n], dec]))
    return {"lip_r_raw": pearson(p_raw["mouth_open"], gt), "lip_r_delivered": pearson(p_dec["mouth_open"], gt),
            "lip_r_real": pearson(p_real["mouth_open"], gt),
            "amplitude_raw": amplitude_ratios(p_raw, p_real), "amplitude_delivered": amplitude_ratios(p_dec, p_real),
            "delivered_psnr_db": 99.0 if mse == 0 else float(10 * np.log10(255.0**2 / mse)),
            "mp4": str(mp4), "strip": str(strip), "frames": n}


def summarize(per_clip: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over clips of every figure clip_quality returns (amplitude ratios per key)."""
    mean = lambda f: float(np.mean([f(c) for c in per_clip]))  # noqa: E731
    out = {k: mean(lambda c, k=k: c[k]) for k in ("lip_r_raw", "lip_r_delivered", "lip_r_real", "delivered_psnr_db")}
    for a in ("amplitude_raw", "amplitude_delivered"):
        out[a] = {k: mean(lambda c, a=a, k=k: c[a][k]) for k in AMPLITUDE_KEYS}
    return out


def family_quality(family: str, run: Any, clips: Sequence[Any], out_dir: Path, *, seed: int = 0,
                   quality: str = "standard", **options: Any) -> dict[str, Any]:
    """Drive each held-out clip (portrait = its first frame, audio = its speech) through the family's
    pipeline on the torch reference, then clip_quality. clips: edgeth.data.dataset clips (frames,
    audio, gt). -> {summary figures, per_clip, timings_s, frames}."""
    from edgeth.models import get_model
    from edgeth.runtime_py.pipelines import SeededNoise, get_pipeline
    from edgeth.runtime_py.torch_backend import torch_call

    fam = get_model(family)
    spec = fam.pipeline(run)
    call, drive, opts = torch_call(fam.programs(run)), get_pipeline(spec.kind), spec.parse_options(options)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    per, timings, total = [], {}, 0
    for i, c in enumerate(clips):
        res = drive(spec, call, image=c.frames[0].astype(np.float32) / 255, audio=c.audio, noise=SeededNoise(seed),
                    **opts)
        for key, v in res.extras.get("timings_s", {}).items():
            timings[key] = timings.get(key, 0.0) + v
        total += len(res.frames)
        per.append(clip_quality(c.frames, c.gt["mouth_open"], res.frames, out_dir, f"{family}_clip{i:02d}",
                                fps=int(res.fps), audio=c.audio, quality=quality))
        per[-1]["extras"] = {k: float(v) for k, v in res.extras.items() if isinstance(v, (int, float))}
    extras = {k: float(np.mean([c["extras"][k] for c in per if k in c["extras"]])) for k in per[0]["extras"]} if per else {}
    return {**summarize(per), "per_clip": per, "timings_s": timings, "frames": total, "quality": quality,
            "options": {k: v for k, v in opts.items() if v is not None}, "extras": extras}


def summary_lines(q: dict[str, Any], what: str) -> list[str]:
    """The lines every family's quality benchmark prints for family_quality's figures."""
    lines = [f"  lip sync r ({what}): raw frames {q['lip_r_raw']:.3f}, delivered mp4 ({q['quality']}) "
             f"{q['lip_r_delivered']:.3f}; mp4 vs raw PSNR {q['delivered_psnr_db']:.1f} dB",
             "    per clip raw " + str([round(c["lip_r_raw"], 3) for c in q["per_clip"]]),
             "    per clip mp4 " + str([round(c["lip_r_delivered"], 3) for c in q["per_clip"]])]
    for a in ("amplitude_raw", "amplitude_delivered"):
        lines.append(f"  {a.replace('_', ' ')} (std generated / std real, 1 = as lively): "
                     + ", ".join(f"{k} {v:.2f}" for k, v in q[a].items()))
    lines.append(f"  probe on the real clips r {q['lip_r_real']:.3f}; frame strips (real over delivered): "
                 f"{Path(q['per_clip'][0]['strip']).parent}/*.png")
    return lines
