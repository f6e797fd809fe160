"""Driver for PipelineSpec kind "latent_video_diffusion" (MDCF, seeds/001 §3.3 and Fig. 2):
portrait + speech -> LMAE latents for the whole clip by DDIM -> [f; m] -> frames.

Pure numpy host code around `call(program, [inputs]) -> [outputs]`; the PyTorch reference and
every exported backend run exactly this loop:

 1. source_encoder(image)                          -> e, context, latent_origin       (once)
 2. windows: "global" NAR = one window over the whole clip (the paper; needs N <= T, the
    denoiser program's static length); "windowed" NAR = windows of T frames with stride T - O
    (host.plan_windows). `auto` picks global when the clip fits one window.
 3. per window: audio_frontend -> audio_encoder -> speech [T, F]; pose_blink_generator -> rho
    [T, P]; overlapping frames cross-faded (host.crossfade: weight (j+1)/(O+1) on the later
    window) into sequences over the clip
 4. x_T = noise.normal("latent/x_T", [N, Z, h, h]) (+ "latent/x_T_pad" for the frames that
    pad the last window); DDIM (edgeth.sampling.ddim_sample) over the *whole* sequence: each
    step calls latent_denoiser on every window and blends the windows' predictions in latent
    space with the same cross-fade, so memory is bounded by one window while every step sees
    a single sequence; eta > 0 draws "latent/step{i}"
 5. z = x0 * latent_scale (per channel) + latent_origin; lmae_decoder then renderer on fixed batches of N
    frames (host.render_batched, last batch padded)

Shape legend: N frames of the clip, T window, O overlap, Z latent channels, h latent size,
F speech features, P pose/blink dims, S image size, 640 audio samples per frame.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgeth.errors import InputError
from edgeth.program import OptionSpec, PipelineSpec
from edgeth.runtime_py.pipelines import NoiseSource, PipelineResult, ProgramCall, register_pipeline
from edgeth.runtime_py.pipelines.host import (Timed, crossfade, plan_windows, prepare_image, progress_bar, read_wave,
                                              render_batched, samples_per_frame)
from edgeth.sampling import DiffusionSchedule, ddim_sample

NAR_MODES = ("auto", "global", "windowed")
OPTIONS = (
    OptionSpec("steps", "int", None, "DDIM sampling steps (default: the spec's sampler steps)", min=1, max=1000),
    OptionSpec("nar", "str", None, "global (one window over the clip, the paper) or windowed NAR", choices=NAR_MODES),
    OptionSpec("eta", "float", None, "DDIM eta (0 = deterministic; > 0 draws step noise)", min=0.0, max=1.0),
)


def blend_windows(starts: list[int], length: int, overlap: int, fn) -> np.ndarray:
    """One sequence from per-window outputs fn(start) [T, ...]: overlaps cross-faded into the later window."""
    out = None
    for w, s in enumerate(starts):
        new = np.asarray(fn(s), dtype=np.float32)
        if out is None:
            out = np.zeros((starts[-1] + length, *new.shape[1:]), np.float32)
        o = overlap if w else 0
        if o:
            out[s:s + o] = crossfade(out[s:s + o], new[:o])
        out[s + o:s + length] = new[o:]
    return out


def plan(n: int, length: int, overlap: int, mode: str) -> list[int]:
    if mode == "auto":
        mode = "global" if n <= length else "windowed"
    if mode == "global":
        if n > length:
            raise InputError(f"global NAR over {n} frames, but the latent denoiser takes {length}",
                             f"pass nar=windowed, or export with a window of at least {n} frames")
        return [0]
    return plan_windows(n, length, overlap)


def sample_latents(spec: PipelineSpec, call: ProgramCall, *, image: np.ndarray, audio: np.ndarray,
                   noise: NoiseSource, steps: int, nar: str, eta: float, bar: Any = None) -> dict[str, Any]:
    """Steps 1-4 plus the un-standardizing of step 5: the diffusion variable x0 and the LMAE latents
    [N, Z, h, h] of the clip, with rho, the prepared portrait, its FDE embedding and the window starts."""
    smp, win, role = spec.sampler, spec.window, spec.program_for
    T, O = int(win["length"]), int(win["overlap"])
    spf = samples_per_frame(spec)
    scale = np.asarray(spec.normalization["latent_scale"], np.float32).reshape(1, -1, 1, 1)
    zshape = tuple(int(x) for x in win["latent_shape"])
    wave = read_wave(audio)
    n = max(1, math.ceil(wave.size / spf))
    starts = plan(n, T, O, nar)
    total = starts[-1] + T
    wave = np.pad(wave, (0, total * spf - wave.size))

    img = prepare_image(image, spec.image_size)
    emb, ctx, origin = call(role("source"), [img])

    def speech_of(s: int) -> np.ndarray:
        logmel = call(role("audio_frontend"), [np.ascontiguousarray(wave[s * spf:(s + T) * spf][None])])[0]
        return call(role("audio_encoder"), [logmel])[0][0]

    speech = blend_windows(starts, T, O, speech_of)
    rho = blend_windows(starts, T, O, lambda s: call(role("pose"), [speech[None, s:s + T]])[0][0])

    def model(x: np.ndarray, t: int) -> np.ndarray:
        ts = np.full((1,), t, np.float32)
        return blend_windows(starts, T, O, lambda s: call(role("denoiser"), [
            np.ascontiguousarray(x[None, s:s + T]), ts, speech[None, s:s + T], rho[None, s:s + T], ctx])[0][0])

    x_T = noise.normal("latent/x_T", (n, *zshape))
    if total > n:
        x_T = np.concatenate([x_T, noise.normal("latent/x_T_pad", (total - n, *zshape))])
    x0 = ddim_sample(model, x_T, DiffusionSchedule.from_json(smp), steps, eta=eta,
                     noise=lambda i, shape: noise.normal(f"latent/step{i}", shape), progress=bar.update if bar else None)
    return {"x0": x0[:n], "latent": (x0[:n] * scale + origin).astype(np.float32), "rho": rho[:n], "image": img,
            "emb": emb, "starts": starts}


def decode_render(spec: PipelineSpec, call: ProgramCall) -> ProgramCall:
    """A call for host.render_batched's "renderer": lmae_decoder on the latents, then the renderer."""
    def run(_name: str, xs: list[np.ndarray]) -> list[np.ndarray]:
        dyn = call(spec.program_for("lmae_decoder"), [xs[-1]])[0]
        return call(spec.program_for("renderer"), [*xs[:-1], dyn])

    return run


@register_pipeline("latent_video_diffusion")
def latent_video_diffusion(spec: Any, call: ProgramCall, *, image: np.ndarray, audio: np.ndarray,
                           noise: NoiseSource, progress: bool = False, steps: int | None = None,
                           nar: str | None = None, eta: float | None = None) -> PipelineResult:
    spec = spec if isinstance(spec, PipelineSpec) else PipelineSpec.from_json(dict(spec))
    steps = int(steps if steps is not None else spec.sampler["steps"])
    eta = float(eta if eta is not None else spec.sampler.get("eta", 0.0))
    mode = nar or spec.window.get("nar", "auto")
    if mode not in NAR_MODES:
        raise InputError(f"nar mode {mode!r} unknown", f"choose one of: {', '.join(NAR_MODES)}")
    batch = int(spec.extra["render_batch"])
    timed = Timed(call)
    bar = progress_bar(progress, steps + math.ceil(read_wave(audio).size / samples_per_frame(spec) / batch))
    z = sample_latents(spec, timed, image=image, audio=audio, noise=noise, steps=steps, nar=mode, eta=eta, bar=bar)
    frames = render_batched(decode_render(spec, timed), "renderer", [z["image"], z["emb"]], z["latent"], batch,
                            spec.image_size, bar)
    if bar:
        bar.close()
    starts = z["starts"]
    extras = {"x0": z["x0"], "latent": z["latent"], "rho": z["rho"], "nar": "global" if len(starts) == 1 else "windowed",
              "windows": len(starts), "window_starts": starts, "steps": steps, **timed.extras()}
    return PipelineResult(frames=np.clip(frames, 0.0, 1.0), fps=spec.fps, extras=extras)
