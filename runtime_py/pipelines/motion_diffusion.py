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

Streaming (`motion_diffusion.stream`, what Pipeline.stream and `edgeth run --stream` use):
audio arrives in chunks; window w runs as soon as its T frames of speech have arrived (or
the stream ended: the last window zero-padded, as offline). After window w, frames before
s_{w+1} + O - B are final (window w+1 only imposes them), so every full renderer batch
below that line is rendered and yielded at once. The offline driver is this same generator
fed one chunk, so a streamed run and an offline run with the same noise make the same calls
in the same order and give the same frames.

Shape legend: H = W = S image size, T window, O overlap, D motion dim, F speech features,
N renderer batch, S_a audio samples (640 per frame at 25 fps, 16 kHz).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from edgeth.errors import InputError
from edgeth.program import OptionSpec, PipelineSpec
from edgeth.runtime_py.pipelines import (FrameChunk, FrameGenerator, NoiseSource, PipelineResult, ProgramCall,
                                         collect, register_pipeline)
from edgeth.runtime_py.pipelines.host import (AudioBuffer, Timed, crossfade, plan_windows, prepare_image,
                                              progress_bar, render_batched, samples_per_frame)
from edgeth.sampling import DiffusionSchedule, ddim_sample

MEAN_MODES = ("stable", "evolving", "mix")
# driver role -> program name in specs written before `roles` existed
ROLES = {"appearance": "appearance_encoder", "audio_frontend": "audio_frontend", "audio_encoder": "audio_encoder",
         "denoiser": "motion_denoiser", "renderer": "renderer"}
OPTIONS = (
    OptionSpec("steps", "int", None, "DDIM sampling steps (default: the spec's sampler steps)", min=1, max=1000),
    OptionSpec("guidance", "float", None, "classifier-free guidance scale on the audio condition", min=0.0, max=20.0),
    OptionSpec("motion_std", "float", None, "motion degree m^sigma (paper range 0-1; default: the run's 75th-percentile window)",
               min=0.0, max=10.0),
    OptionSpec("motion_mean_mode", "str", None, "motion mean m^mu per window", choices=MEAN_MODES),
    OptionSpec("mean_mix", "float", None, "weight of the portrait's code in 'mix' mode", min=0.0, max=1.0),
    OptionSpec("eta", "float", None, "DDIM eta (0 = deterministic; > 0 draws step noise)", min=0.0, max=1.0),
)


def _spec(spec: Any) -> PipelineSpec:
    return spec if isinstance(spec, PipelineSpec) else PipelineSpec.from_json(dict(spec))


def _role(spec: PipelineSpec, role: str) -> str | None:
    return spec.program_for(role, ROLES[role])


@dataclass
class _Settings:
    """The spec's sampler/window/normalization with the user's options applied and checked."""
    sched: DiffusionSchedule
    steps: int
    guidance: float
    eta: float
    mode: str
    mix: float
    sigma: float
    T: int
    O: int
    B: int
    D: int
    spf: int
    scale: np.ndarray
    lo: float
    hi: float
    keep: np.ndarray
    n_batch: int
    programs: tuple


def _settings(spec: PipelineSpec, steps: int | None = None, guidance: float | None = None,
              motion_std: float | None = None, motion_mean_mode: str | None = None, mean_mix: float | None = None,
              eta: float | None = None) -> _Settings:
    smp, win, norm = spec.sampler, spec.window, spec.normalization
    steps = int(steps if steps is not None else smp["steps"])
    if steps < 1:
        raise InputError(f"steps {steps} must be at least 1", "pass steps=10 or more")
    mode = motion_mean_mode or win["motion_mean"]
    if mode not in MEAN_MODES:
        raise InputError(f"motion mean mode {mode!r} unknown", f"choose one of: {', '.join(MEAN_MODES)}")
    sigma = float(motion_std if motion_std is not None else win["motion_std"])
    if not (math.isfinite(sigma) and sigma >= 0):
        raise InputError(f"motion std {sigma} invalid", "pass a non-negative number (paper range 0-1)")
    T, O = int(win["length"]), int(win["overlap"])
    plan_windows(0, T, O)  # checks that windows advance
    lo, hi = norm.get("motion_clip", [-1.0, 1.0])
    return _Settings(
        sched=DiffusionSchedule.from_json(smp), steps=steps,
        guidance=float(guidance if guidance is not None else smp["guidance"]),
        eta=float(eta if eta is not None else smp.get("eta", 0.0)), mode=mode,
        mix=float(mean_mix if mean_mix is not None else win.get("mean_mix", 0.5)), sigma=sigma, T=T, O=O,
        B=min(int(win.get("blend", 0)), O),  # overlap frames cross-faded instead of imposed (0 in older bundles)
        D=int(win["motion_dim"]), spf=samples_per_frame(spec),
        scale=np.asarray(norm["motion_residual_scale"], dtype=np.float32), lo=lo, hi=hi,
        keep=np.asarray(smp.get("cond_keep", [[1.0, 1.0], [0.0, 0.0]]), dtype=np.float32),
        n_batch=int(spec.extra["render_batch"]), programs=tuple(_role(spec, r) for r in ROLES))


def _window(st: _Settings, timed: Timed, noise: NoiseSource, w: int, s: int, wave: np.ndarray, hint: np.ndarray,
            motion: np.ndarray, bar: Any) -> None:
    """Sample window w (frames s .. s+T) from its speech `wave` [1, T*spf] into `motion`."""
    T, O, B, D = st.T, st.O, st.B, st.D
    _, p_front, p_audio, p_den, _ = st.programs
    chunk = timed(p_front, [wave])[0] if p_front else wave  # older bundles fold log-mel into audio_encoder
    speech = timed(p_audio, [chunk])[0]
    last = motion[s + O - 1][None] if w else hint  # last frame of the previous window
    mu = {"stable": hint, "evolving": last, "mix": st.mix * hint + (1 - st.mix) * last}[st.mode].astype(np.float32)
    inputs = [np.repeat(speech, 2, 0), np.repeat(hint, 2, 0), np.repeat(mu, 2, 0),
              np.full((2, 1), st.sigma, np.float32), st.keep]

    def model(x: np.ndarray, t: int) -> np.ndarray:
        out = timed(p_den, [np.repeat(x, 2, 0), np.full((2,), t, np.float32), *inputs])[0]
        return out[1:2] + st.guidance * (out[0:1] - out[1:2])

    known = None
    if w and O - B:
        kv = np.zeros((1, T, D), np.float32)
        kv[0, :O - B] = (motion[s:s + O - B] - mu) / st.scale
        km = np.zeros((1, T, 1), np.float32)
        km[0, :O - B] = 1.0
        known = (kv, km)
    x_T = noise.normal(f"window{w}/x_T", (1, T, D))
    x0 = ddim_sample(model, x_T, st.sched, st.steps, eta=st.eta, known=known,
                     noise=lambda i, shape: noise.normal(f"window{w}/step{i}", shape),
                     progress=bar.update if bar else None)
    new = np.clip(mu + x0[0] * st.scale, st.lo, st.hi)
    if w and B:  # cross-fade the last B overlap frames from the previous window into this one
        motion[s + O - B:s + O] = crossfade(motion[s + O - B:s + O], new[O - B:O])
    motion[s + (O if w else 0):s + T] = new[(O if w else 0):]


def _work(chunks: Any, st: _Settings) -> int | None:
    """Progress total (sampler steps + renderer calls) when the audio's length is known up front."""
    if not isinstance(chunks, (np.ndarray, list, tuple)):
        return None
    parts = [chunks] if isinstance(chunks, np.ndarray) else chunks
    n = max(1, math.ceil(sum(np.asarray(c).size for c in parts) / st.spf))
    return len(plan_windows(n, st.T, st.O)) * st.steps + math.ceil(n / st.n_batch)


def motion_diffusion_stream(spec: Any, call: ProgramCall, *, image: np.ndarray, chunks: Iterable[np.ndarray],
                            noise: NoiseSource, progress: bool = False, **options: Any) -> FrameGenerator:
    """Frames as soon as they are final, from speech arriving in `chunks` (module docstring)."""
    spec = _spec(spec)
    st = _settings(spec, **options)
    T, O, B, N, spf = st.T, st.O, st.B, st.n_batch, st.spf
    p_app, p_render = st.programs[0], st.programs[-1]
    audio, timed = AudioBuffer(chunks), Timed(call)
    bar = progress_bar(progress, _work(chunks, st))
    app = timed(p_app, [prepare_image(image, spec.image_size)])
    feats, hint = app[:-1], app[-1].reshape(1, st.D).astype(np.float32)
    motion = np.zeros((0, st.D), dtype=np.float32)
    starts: list[int] = []
    done = 0  # frames rendered and yielded
    while True:
        s = len(starts) * (T - O)
        if not audio.fill((s + T) * spf) and starts and s + O >= math.ceil(audio.received / spf):
            break  # the stream ended and the previous window already covers every frame
        motion = np.concatenate([motion, np.zeros((s + T - len(motion), st.D), np.float32)])
        _window(st, timed, noise, len(starts), s, audio.read(s * spf, (s + T) * spf)[None], hint, motion, bar)
        starts.append(s)
        audio.release((s + T - O) * spf)
        final = min(s + T - B, math.ceil(audio.received / spf))  # the next window leaves these frames alone
        while done + N <= final:
            yield FrameChunk(done, _render(timed, p_render, [*feats, hint], motion[done:done + N], st, spec, bar))
            done += N
    n_frames = max(1, math.ceil(audio.received / spf))
    motion = motion[:n_frames]
    if done < n_frames:
        yield FrameChunk(done, _render(timed, p_render, [*feats, hint], motion[done:], st, spec, bar))
    if bar:
        bar.close()
    extras = {"motion": motion, "motion_hint": hint[0], "windows": len(starts), "window_starts": starts,
              "steps": st.steps, "guidance": st.guidance, "motion_std": st.sigma, "motion_mean_mode": st.mode,
              **timed.extras()}
    return PipelineResult(frames=None, fps=spec.fps, extras=extras)  # type: ignore[arg-type]


def _render(timed: Timed, program: str, fixed: list[np.ndarray], motion: np.ndarray, st: _Settings,
            spec: PipelineSpec, bar: Any) -> np.ndarray:
    return np.clip(render_batched(timed, program, fixed, motion, st.n_batch, spec.image_size, bar), 0.0, 1.0)


@register_pipeline("motion_diffusion")
def motion_diffusion(spec: Any, call: ProgramCall, *, image: np.ndarray, audio: np.ndarray, noise: NoiseSource,
                     progress: bool = False, **options: Any) -> PipelineResult:
    """The offline run: the streaming driver fed the whole wave as one chunk."""
    return collect(motion_diffusion_stream(spec, call, image=image, chunks=[audio], noise=noise, progress=progress,
                                           **options))


motion_diffusion.stream = motion_diffusion_stream  # type: ignore[attr-defined]
