"""Driver for PipelineSpec kind "vqtalker" (seeds/002): portrait + speech -> motion tokens ->
frames, and the sender/receiver halves the codec and video-driven mode use.

Pure numpy host code around `call(program, [inputs]) -> [outputs]` (no torch), shared by the
PyTorch reference and every exported backend:

 1. appearance_encoder(portrait)             -> skips a^0..a^K, f_g, f_s            (once)
 2. speech tokens, per window of T frames: argmax of speech_tokenizer(wave window) scores
    (or an external token stream, option speech_tokens=FILE.npy)
 3. controls [n, C] (standardized yaw, pitch, roll, gaze x/y, blink), option `controls`:
    generator (the default when the bundle has the role) control_generator(speech tokens)
                per window: the audio-conditioned pose / gaze / blink generator
    FILE.npy    a reference clip's, raw units [n, C]
    prior       (the default without the role: runs and bundles made before it) a smoothed
                random walk from noise.normal("controls/walk") with the training
                statistics, blinks where noise.uniform("controls/blink") < rate
 4. per window w, coarse to fine: for r = 0..R-1, token_generator(speech, f_g, controls,
    tokens so far, one-hot r) -> logits [1, T, G, K]; argmax -> layer r's indices
    (windows do not overlap; the last one's audio is zero-padded and its extra frames dropped)
 5. renderer(skips, f_g, indices [N, G, R]) on fixed batches of N frames
 6. (retokenize, default on) the sender path on the rendered frames: tokenizer_encoder ->
    quantizer(f_t, f_s) -> indices; their agreement with step 4's is `cycle_agreement`
    (a consistency figure, and what puts the sender programs in the golden/calibration run)

Stages recorded: indices [n, G, R] and speech_tokens [n] (kind indices), frames;
extras["controls_source"] says which source step 3 used.
Shape legend: S image size, T window, N render batch, G groups, R residual layers, K codes,
V speech vocabulary, C controls, n frames.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from edgeth.errors import InputError
from edgeth.program import OptionSpec, PipelineSpec
from edgeth.runtime_py.pipelines import NoiseSource, PipelineResult, ProgramCall, register_pipeline
from edgeth.runtime_py.pipelines.host import (Timed, plan_windows, prepare_image, progress_bar, read_wave,
                                              render_batched, samples_per_frame)

ROLES = ("appearance", "speech_tokenizer", "controls", "generator", "renderer", "tokenizer_encoder", "quantizer")
OPTIONS = (
    OptionSpec("speech_tokens", "str", None, "an external speech-token stream (.npy, int, one per frame at 25 Hz) "
               "instead of the speech_tokenizer program"),
    OptionSpec("controls", "str", None, "head pose / gaze / blink: 'generator' (the audio-conditioned generator, "
               "default), 'prior' (a random walk), or a reference clip's .npy [frames, 6]: yaw, pitch, roll, gaze_x, "
               "gaze_y, blink"),
    OptionSpec("retokenize", "bool", None, "re-tokenize the rendered frames and report cycle_agreement (default on)"),
)


class ExternalTokens:
    """A token stream from another tokenizer: int [T] at the video frame rate, values < vocab."""

    def __init__(self, tokens: np.ndarray, vocab: int, source: str = "tokens"):
        t = np.asarray(tokens)
        if t.ndim != 1 or t.dtype.kind not in "iu" or t.size == 0:
            raise InputError(f"{source}: speech tokens must be a non-empty 1-D integer array, got {t.dtype} {t.shape}",
                             "save one token per video frame (25 Hz) with numpy.save")
        if t.min() < 0 or t.max() >= vocab:
            raise InputError(f"{source}: speech tokens outside [0, {vocab})",
                             f"the generator was trained with a {vocab}-token vocabulary; retrain it on this tokenizer")
        self.vocab, self._t = vocab, t.astype(np.int64)

    @classmethod
    def load(cls, path: str | Path, vocab: int) -> "ExternalTokens":
        try:
            arr = np.load(Path(path), allow_pickle=False)
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read speech tokens {path}: {e}", "pass a .npy file of int tokens") from None
        return cls(arr, vocab, str(path))

    def tokens(self, wave: np.ndarray | None, n_frames: int) -> np.ndarray:
        t = self._t[:n_frames]
        return np.pad(t, (0, n_frames - t.size), mode="edge") if t.size < n_frames else t


def _spec(spec: Any) -> PipelineSpec:
    return spec if isinstance(spec, PipelineSpec) else PipelineSpec.from_json(dict(spec))


def _load_npy(path: str, what: str) -> np.ndarray:
    try:
        return np.load(Path(path), allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read {what} {path}: {e}", f"pass a .npy file of {what}") from None


def prior_controls(spec: PipelineSpec, n: int, noise: NoiseSource) -> np.ndarray:
    """Standardized controls [n, C] from the host prior (random walk + blinks), see the module doc."""
    c = spec.extra["controls"]
    mean, std = np.asarray(c["mean"], np.float32), np.asarray(c["std"], np.float32)
    sigma = float(c["smooth_frames"])
    pad = int(4 * sigma) + 1
    k = np.exp(-0.5 * (np.arange(-pad, pad + 1) / sigma) ** 2)
    walk = noise.normal("controls/walk", (n + 2 * pad, len(mean)))
    walk = np.stack([np.convolve(walk[:, j], k / k.sum(), "valid") for j in range(len(mean))], 1)[:n]
    walk = walk / (walk.std(0, keepdims=True) + 1e-6)
    raw = mean + std * walk
    b = c["keys"].index("blink")
    raw[:, b] = 0.0
    for t in np.nonzero(noise.uniform("controls/blink", (n,)) < float(c["blink_rate"]))[0]:
        raw[t:t + 4, b] = np.maximum(raw[t:t + 4, b], np.asarray([0.5, 1.0, 1.0, 0.5])[: n - t])
    return ((raw - mean) / std).astype(np.float32)


def reference_controls(spec: PipelineSpec, path: str, n: int) -> np.ndarray:
    c = spec.extra["controls"]
    raw = np.asarray(_load_npy(path, "controls"), np.float32)
    if raw.ndim != 2 or raw.shape[1] != len(c["keys"]) or not np.isfinite(raw).all():
        raise InputError(f"controls {path}: expected finite [frames, {len(c['keys'])}] ({', '.join(c['keys'])}), "
                         f"got {raw.shape}", "save one row per frame with numpy.save")
    raw = np.concatenate([raw, np.repeat(raw[-1:], max(0, n - len(raw)), 0)])[:n]
    return ((raw - np.asarray(c["mean"], np.float32)) / np.asarray(c["std"], np.float32)).astype(np.float32)


def choose_controls(timed, spec: PipelineSpec, option: str | None, sp: np.ndarray, starts: list[int],
                    noise: NoiseSource) -> tuple[np.ndarray, str]:
    """(standardized controls [total, C], source) for option `controls` (see the module doc)."""
    T, total = int(spec.window["length"]), len(sp)
    role = spec.program_for("controls")
    choice = option or ("generator" if role else "prior")
    if choice == "prior":
        return prior_controls(spec, total, noise), "prior"
    if choice != "generator":
        return reference_controls(spec, choice, total), "reference"
    if not role:
        raise InputError("this model has no control generator (trained or exported before it existed)",
                         "pass controls=prior or controls=FILE.npy, or retrain with `edgeth train vqtalker --stage 3`")
    ctrl = np.concatenate([timed(role, [sp[None, s:s + T]])[0][0] for s in starts])
    return np.ascontiguousarray(ctrl, np.float32), "control_generator"


def tokenize_frames(call: ProgramCall, spec: PipelineSpec, frames: np.ndarray, f_s: np.ndarray,
                    bar: Any = None) -> np.ndarray:
    """The sender: frames [n, S, S, 3] in [0, 1] -> indices int32 [n, G, R] of f_t - f_s."""
    n_batch = int(spec.extra["render_batch"])
    enc, quant = spec.program_for("tokenizer_encoder"), spec.program_for("quantizer")
    out = []
    for b in range(0, len(frames), n_batch):
        m = frames[b:b + n_batch]
        pad = np.concatenate([m, np.repeat(m[-1:], n_batch - len(m), 0)]) if len(m) < n_batch else m
        f_t = call(enc, [np.ascontiguousarray(pad.transpose(0, 3, 1, 2), dtype=np.float32)])[0]
        out.append(call(quant, [f_t, f_s])[0][: len(m)])
        if bar is not None:
            bar.update(1)
    return np.concatenate(out).astype(np.int32)


def appearance(call: ProgramCall, spec: PipelineSpec, image: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """(skips, f_g [1, Cg], f_s [1, Dm]) of a portrait [H, W, 3] in [0, 1]."""
    app = call(spec.program_for("appearance"), [prepare_image(image, spec.image_size)])
    return list(app[:-2]), app[-2], app[-1]


def render_tokens(call: ProgramCall, spec: PipelineSpec, skips: list[np.ndarray], f_g: np.ndarray,
                  indices: np.ndarray, bar: Any = None) -> np.ndarray:
    """The receiver: indices [n, G, R] on the portrait's appearance -> frames [n, S, S, 3]."""
    q = spec.extra["quantizer"]
    if indices.ndim != 3 or indices.shape[1:] != (q["groups"], q["residual"]):
        raise InputError(f"indices of shape {indices.shape} do not fit G={q['groups']}, R={q['residual']}",
                         "encode with the same run's tokenizer")
    frames = render_batched(call, spec.program_for("renderer"), [*skips, f_g], indices.astype(np.int32),
                            int(spec.extra["render_batch"]), spec.image_size, bar)
    return np.clip(frames, 0.0, 1.0)


def _speech_tokens(timed, spec, wave, starts, T, spf, speech_tokens: str | None) -> np.ndarray:
    total = starts[-1] + T
    if speech_tokens:
        return ExternalTokens.load(speech_tokens, int(spec.extra["speech_vocab"])).tokens(None, total)
    p = spec.program_for("speech_tokenizer")
    return np.concatenate([timed(p, [wave[s * spf:(s + T) * spf][None]])[0][0].argmax(-1) for s in starts])


@register_pipeline("vqtalker")
def vqtalker(spec: Any, call: ProgramCall, *, image: np.ndarray, audio: np.ndarray, noise: NoiseSource,
             progress: bool = False, speech_tokens: str | None = None, controls: str | None = None,
             retokenize: bool | None = None) -> PipelineResult:
    spec = _spec(spec)
    q = spec.extra["quantizer"]
    G, R = int(q["groups"]), int(q["residual"])
    T, spf = int(spec.window["length"]), samples_per_frame(spec)
    retokenize = True if retokenize is None else bool(retokenize)
    wave = read_wave(audio)
    n = max(1, math.ceil(wave.size / spf))
    starts = plan_windows(n, T, 0)
    total = starts[-1] + T
    wave = np.pad(wave, (0, total * spf - wave.size))

    timed = Timed(call)
    n_batch = int(spec.extra["render_batch"])
    bar = progress_bar(progress, len(starts) * R + math.ceil(n / n_batch) * (2 if retokenize else 1))
    skips, f_g, f_s = appearance(timed, spec, image)
    sp = _speech_tokens(timed, spec, wave, starts, T, spf, speech_tokens).astype(np.int32)
    ctrl, source = choose_controls(timed, spec, controls, sp, starts, noise)
    tokens = np.zeros((total, G, R), np.int32)
    gen = spec.program_for("generator")
    for s in starts:
        for r in range(R):
            onehot = np.eye(R, dtype=np.float32)[r:r + 1]
            logits = timed(gen, [sp[None, s:s + T], f_g, ctrl[None, s:s + T], tokens[None, s:s + T], onehot])[0]
            tokens[s:s + T, :, r] = logits[0].argmax(-1)
            if bar:
                bar.update(1)
    tokens = tokens[:n]
    frames = render_tokens(timed, spec, skips, f_g, tokens, bar)
    extras: dict[str, Any] = {"indices": tokens, "speech_tokens": sp[:n], "controls": ctrl[:n],
                              "controls_source": source, "windows": len(starts),
                              "bitrate_bps": float(q["bitrate_bps"])}
    if retokenize:
        cyc = tokenize_frames(timed, spec, frames, f_s, bar)
        extras["cycle_indices"] = cyc
        extras["cycle_agreement"] = float(np.mean(cyc == tokens))
    if bar:
        bar.close()
    return PipelineResult(frames=frames, fps=spec.fps, extras={**extras, **timed.extras()})


def drive(spec: Any, call: ProgramCall, *, image: np.ndarray, driving: np.ndarray,
          progress: bool = False) -> PipelineResult:
    """Video-driven mode: the driving frames' motion relative to their first frame, tokenized
    (sender) and rendered on the portrait (receiver). driving [n, S, S, 3] in [0, 1]."""
    spec = _spec(spec)
    timed = Timed(call)
    _, _, f_ref = appearance(timed, spec, driving[0])
    tokens = tokenize_frames(timed, spec, driving, f_ref)
    skips, f_g, _ = appearance(timed, spec, image)
    frames = render_tokens(timed, spec, skips, f_g, tokens)
    return PipelineResult(frames=frames, fps=spec.fps, extras={"indices": tokens, **timed.extras()})
