"""Driver for PipelineSpec kind "motion_diffusion" (IF-MDM and any family with the same
same programs): portrait + speech -> motion windows by DDIM -> frames.

Pure numpy host code around `call(program, [inputs]) -> [outputs]`; it never imports torch
or a model, so the PyTorch reference and every exported backend run exactly this loop:

 1. appearance_encoder(image)                 -> a^0..a^K, m'            (once)
 2. per window w of T frames (stride T - O, the last one zero-padded):
      audio_frontend(wave window)             -> log-mel [1, 4T, M]   (when the spec has it;
      audio_encoder(log-mel)                  -> speech features [1, T, F]   else audio_encoder
                                                                             takes the wave)
      m^mu: "stable" = m', "evolving" = last frame of window w-1, "mix" = blend (§3.4)
      m^sigma: the user's motion-degree scalar
      x_T = noise.normal("window{w}/x_T"); DDIM (edgeth.sampling) with classifier-free
      guidance: motion_denoiser on the batch [cond, uncond] (keep = [1,1] / [0,0]),
      out = uncond + g (cond - uncond); of the O frames shared with window w-1 the first
      O - B are imposed by inpainting and the last B ("blend") cross-faded from window w-1's
      values to window w's, so windows chain without jumps; eta > 0 draws "window{w}/step{i}".
      motion = m^mu + x0 * residual_scale, clipped to [-1, 1]
 3. renderer on fixed batches of N motion codes (last batch padded by repetition).

Shape legend: H = W = S image size, T window, O overlap, D motion dim, F speech features,
N renderer batch, S_a audio samples (640 per frame at 25 fps, 16 kHz).
"""
from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Any

import numpy as np

from edgeth.errors import InputError
from edgeth.program import PipelineSpec
from edgeth.runtime_py.pipelines import NoiseSource, PipelineResult, ProgramCall, register_pipeline
from edgeth.sampling import DiffusionSchedule, ddim_sample

MEAN_MODES = ("stable", "evolving", "mix")


def prepare_image(image: np.ndarray, size: int) -> np.ndarray:
    """[H, W, 3] float in [0, 1] (any size) -> [1, 3, S, S] float32 (bilinear resize if needed)."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] not in (3, 4) or min(img.shape[:2]) < 2:
        raise InputError(f"image must be [H, W, 3] RGB, got shape {img.shape}", "pass an RGB portrait")
    img = img[..., :3].astype(np.float32)
    if not np.isfinite(img).all():
        raise InputError("image has NaN/inf values", "pass a valid image in [0, 1]")
    img = np.clip(img, 0.0, 1.0)
    if img.shape[:2] != (size, size):
        from PIL import Image

        pil = Image.fromarray((img * 255 + 0.5).astype(np.uint8)).resize((size, size), Image.BILINEAR)
        img = np.asarray(pil, dtype=np.float32) / 255.0
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None])


def plan_windows(n_frames: int, window: int, overlap: int) -> list[int]:
    """Start frame of every window; window w >= 1 re-generates O frames of window w-1."""
    stride = window - overlap
    return [w * stride for w in range(1 + max(0, math.ceil((n_frames - window) / stride)))]


def _spec(spec: Any) -> PipelineSpec:
    return spec if isinstance(spec, PipelineSpec) else PipelineSpec.from_json(dict(spec))


@register_pipeline("motion_diffusion")
def motion_diffusion(spec: Any, call: ProgramCall, *, image: np.ndarray, audio: np.ndarray, noise: NoiseSource,
                     progress: bool = False, steps: int | None = None, guidance: float | None = None,
                     motion_std: float | None = None, motion_mean_mode: str | None = None,
                     mean_mix: float | None = None, eta: float | None = None) -> PipelineResult:
    spec = _spec(spec)
    smp, win, norm, extra = spec.sampler, spec.window, spec.normalization, spec.extra
    sched = DiffusionSchedule.from_json(smp)
    steps = int(steps if steps is not None else smp["steps"])
    guidance = float(guidance if guidance is not None else smp["guidance"])
    eta = float(eta if eta is not None else smp.get("eta", 0.0))
    mode = motion_mean_mode or win["motion_mean"]
    if mode not in MEAN_MODES:
        raise InputError(f"motion mean mode {mode!r} unknown", f"choose one of: {', '.join(MEAN_MODES)}")
    mix = float(mean_mix if mean_mix is not None else win.get("mean_mix", 0.5))
    sigma = float(motion_std if motion_std is not None else win["motion_std"])
    if not (math.isfinite(sigma) and sigma >= 0):
        raise InputError(f"motion std {sigma} invalid", "pass a non-negative number (paper range 0-1)")
    T, O, D = int(win["length"]), int(win["overlap"]), int(win["motion_dim"])
    B = min(int(win.get("blend", 0)), O)  # overlap frames cross-faded instead of imposed (0 in older bundles)
    spf = int(spec.audio.get("samples_per_frame", spec.audio.get("sample_rate", 16000) // spec.fps))
    scale = np.asarray(norm["motion_residual_scale"], dtype=np.float32)
    lo, hi = norm.get("motion_clip", [-1.0, 1.0])
    keep = np.asarray(smp.get("cond_keep", [[1.0, 1.0], [0.0, 0.0]]), dtype=np.float32)
    n_batch = int(extra["render_batch"])

    wave = np.asarray(audio, dtype=np.float32).reshape(-1)
    if wave.size == 0 or not np.isfinite(wave).all():
        raise InputError("audio is empty or has NaN/inf samples", "pass a 16 kHz mono waveform")
    n_frames = max(1, math.ceil(wave.size / spf))
    starts = plan_windows(n_frames, T, O)
    total = starts[-1] + T
    wave = np.pad(wave, (0, total * spf - wave.size))

    timings: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)

    def timed(name: str, xs: list[np.ndarray]) -> list[np.ndarray]:
        t0 = time.perf_counter()
        out = call(name, xs)
        timings[name] += time.perf_counter() - t0
        calls[name] += 1
        return out

    has_frontend = "audio_frontend" in spec.programs
    bar = _bar(progress, len(starts) * steps + math.ceil(n_frames / n_batch))
    app = timed("appearance_encoder", [prepare_image(image, spec.image_size)])
    feats, hint = app[:-1], app[-1].reshape(1, D).astype(np.float32)
    motion = np.zeros((total, D), dtype=np.float32)
    for w, s in enumerate(starts):
        chunk = wave[s * spf:(s + T) * spf][None]
        if has_frontend:  # log-mel as its own (FP32) program; older bundles fold it into audio_encoder
            chunk = timed("audio_frontend", [chunk])[0]
        speech = timed("audio_encoder", [chunk])[0]
        last = motion[s + O - 1][None] if w else hint  # last frame of the previous window
        mu = {"stable": hint, "evolving": last, "mix": mix * hint + (1 - mix) * last}[mode].astype(np.float32)
        inputs = [np.repeat(speech, 2, 0), np.repeat(hint, 2, 0), np.repeat(mu, 2, 0),
                  np.full((2, 1), sigma, np.float32), keep]

        def model(x: np.ndarray, t: int) -> np.ndarray:
            out = timed("motion_denoiser", [np.repeat(x, 2, 0), np.full((2,), t, np.float32), *inputs])[0]
            return out[1:2] + guidance * (out[0:1] - out[1:2])

        known = None
        if w and O - B:
            kv = np.zeros((1, T, D), np.float32)
            kv[0, :O - B] = (motion[s:s + O - B] - mu) / scale
            km = np.zeros((1, T, 1), np.float32)
            km[0, :O - B] = 1.0
            known = (kv, km)
        x_T = noise.normal(f"window{w}/x_T", (1, T, D))
        x0 = ddim_sample(model, x_T, sched, steps, eta=eta, known=known,
                         noise=lambda i, shape, w=w: noise.normal(f"window{w}/step{i}", shape),
                         progress=bar.update if bar else None)
        new = np.clip(mu + x0[0] * scale, lo, hi)
        if w and B:  # cross-fade the last B overlap frames from the previous window into this one
            a = (np.arange(1, B + 1, dtype=np.float32) / (B + 1))[:, None]
            motion[s + O - B:s + O] = (1 - a) * motion[s + O - B:s + O] + a * new[O - B:O]
        motion[s + (O if w else 0):s + T] = new[(O if w else 0):]

    motion = motion[:n_frames]
    frames = np.zeros((n_frames, spec.image_size, spec.image_size, 3), dtype=np.float32)
    for b in range(0, n_frames, n_batch):
        m = motion[b:b + n_batch]
        pad = np.concatenate([m, np.repeat(m[-1:], n_batch - len(m), 0)]) if len(m) < n_batch else m
        out = timed("renderer", [*feats, hint, np.ascontiguousarray(pad)])[0]
        frames[b:b + len(m)] = out[: len(m)].transpose(0, 2, 3, 1)
        if bar:
            bar.update(1)
    if bar:
        bar.close()
    extras = {"motion": motion, "motion_hint": hint[0], "windows": len(starts), "window_starts": starts,
              "steps": steps, "guidance": guidance, "motion_std": sigma, "motion_mean_mode": mode,
              "timings_s": dict(timings), "calls": dict(calls)}
    return PipelineResult(frames=np.clip(frames, 0.0, 1.0), fps=spec.fps, extras=extras)


def _bar(progress: bool, total: int):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="generate", dynamic_ncols=True)
