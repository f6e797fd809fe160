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
from typing import Any

import numpy as np

from edgeth.errors import InputError
from edgeth.program import OptionSpec, PipelineSpec
from edgeth.runtime_py.pipelines import NoiseSource, PipelineResult, ProgramCall, register_pipeline
from edgeth.runtime_py.pipelines.host import (Timed, crossfade, plan_windows, prepare_image, progress_bar,  # noqa: F401
                                              read_wave, render_batched, samples_per_frame)
from edgeth.sampling import DiffusionSchedule, ddim_sample

MEAN_MODES = ("stable", "evolving", "mix")
# driver role -> program name in specs written before `roles` existed
ROLES = {"appearance": "appearance_encoder", "audio_frontend": "audio_frontend", "audio_encoder": "audio_encoder",
         "denoiser": "motion_denoiser", "renderer": "renderer"}
OPTIONS = (
    OptionSpec("steps", "int", None, "DDIM sampling steps (default: the spec's sampler steps)", min=1, max=1000),
    OptionSpec("guidance", "float", None, "classifier-free guidance scale on the audio condition", min=0.0, max=20.0),
    OptionSpec("motion_std", "float", None, "motion degree m^sigma (paper range 0-1; default: the run's median)",
               min=0.0, max=10.0),
    OptionSpec("motion_mean_mode", "str", None, "motion mean m^mu per window", choices=MEAN_MODES),
    OptionSpec("mean_mix", "float", None, "weight of the portrait's code in 'mix' mode", min=0.0, max=1.0),
    OptionSpec("eta", "float", None, "DDIM eta (0 = deterministic; > 0 draws step noise)", min=0.0, max=1.0),
)


def _spec(spec: Any) -> PipelineSpec:
    return spec if isinstance(spec, PipelineSpec) else PipelineSpec.from_json(dict(spec))


def _role(spec: PipelineSpec, role: str) -> str | None:
    return spec.program_for(role, ROLES[role])


@register_pipeline("motion_diffusion")
def motion_diffusion(spec: Any, call: ProgramCall, *, image: np.ndarray, audio: np.ndarray, noise: NoiseSource,
                     progress: bool = False, steps: int | None = None, guidance: float | None = None,
                     motion_std: float | None = None, motion_mean_mode: str | None = None,
                     mean_mix: float | None = None, eta: float | None = None) -> PipelineResult:
    spec = _spec(spec)
    smp, win, norm, extra = spec.sampler, spec.window, spec.normalization, spec.extra
    sched = DiffusionSchedule.from_json(smp)
    steps = int(steps if steps is not None else smp["steps"])
    if steps < 1:
        raise InputError(f"steps {steps} must be at least 1", "pass steps=10 or more")
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
    spf = samples_per_frame(spec)
    scale = np.asarray(norm["motion_residual_scale"], dtype=np.float32)
    lo, hi = norm.get("motion_clip", [-1.0, 1.0])
    keep = np.asarray(smp.get("cond_keep", [[1.0, 1.0], [0.0, 0.0]]), dtype=np.float32)
    n_batch = int(extra["render_batch"])
    p_app, p_front, p_audio, p_den, p_render = (_role(spec, r) for r in ROLES)

    wave = read_wave(audio)
    n_frames = max(1, math.ceil(wave.size / spf))
    starts = plan_windows(n_frames, T, O)
    total = starts[-1] + T
    wave = np.pad(wave, (0, total * spf - wave.size))

    timed = Timed(call)
    bar = progress_bar(progress, len(starts) * steps + math.ceil(n_frames / n_batch))
    app = timed(p_app, [prepare_image(image, spec.image_size)])
    feats, hint = app[:-1], app[-1].reshape(1, D).astype(np.float32)
    motion = np.zeros((total, D), dtype=np.float32)
    for w, s in enumerate(starts):
        chunk = wave[s * spf:(s + T) * spf][None]
        if p_front:  # log-mel as its own (FP32) program; older bundles fold it into audio_encoder
            chunk = timed(p_front, [chunk])[0]
        speech = timed(p_audio, [chunk])[0]
        last = motion[s + O - 1][None] if w else hint  # last frame of the previous window
        mu = {"stable": hint, "evolving": last, "mix": mix * hint + (1 - mix) * last}[mode].astype(np.float32)
        inputs = [np.repeat(speech, 2, 0), np.repeat(hint, 2, 0), np.repeat(mu, 2, 0),
                  np.full((2, 1), sigma, np.float32), keep]

        def model(x: np.ndarray, t: int) -> np.ndarray:
            out = timed(p_den, [np.repeat(x, 2, 0), np.full((2,), t, np.float32), *inputs])[0]
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
            motion[s + O - B:s + O] = crossfade(motion[s + O - B:s + O], new[O - B:O])
        motion[s + (O if w else 0):s + T] = new[(O if w else 0):]

    motion = motion[:n_frames]
    frames = render_batched(timed, p_render, [*feats, hint], motion, n_batch, spec.image_size, bar)
    if bar:
        bar.close()
    extras = {"motion": motion, "motion_hint": hint[0], "windows": len(starts), "window_starts": starts,
              "steps": steps, "guidance": guidance, "motion_std": sigma, "motion_mean_mode": mode, **timed.extras()}
    return PipelineResult(frames=np.clip(frames, 0.0, 1.0), fps=spec.fps, extras=extras)
