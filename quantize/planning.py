"""From `--precision/--budget/--calib` to one PrecisionPlan per program (what `edgeth export` calls).

  fp32                  plans without calibration (nothing to capture)
  fp16, int8,           calibration captured from the reference pipeline on the calibration
  int8-weights          clips (cached per checkpoint + clip set) and handed to every target
  mixed                 the same capture, then the sensitivity search under the budget on the
                        end-to-end output of the first calibration clip (edgeth.quantize.mixed),
                        then checked end to end on a real backend (verify_target)

Calibration clips: `--calib DIR` (portrait image + speech .wav pairs with the same stem,
up to --calib-clips of them, in name order) or, by default, synthetic clips
(edgeth.data.synth) with seeds seed..seed+N-1.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from edgeth.errors import InputError
from edgeth.quantize.plan import PRECISIONS, PrecisionPlan

if TYPE_CHECKING:
    from edgeth.program import PipelineSpec, Program
    from edgeth.quantize.calibrate import CalibrationSet, Clip

IMAGE_EXT = (".png", ".jpg", ".jpeg")
DEFAULT_CLIPS = 4


@dataclass
class PlanResult:
    plans: dict[str, PrecisionPlan]
    calibration: dict[str, Any] = field(default_factory=dict)  # capture summary (key, calls per program)
    mixed: dict[str, Any] | None = None  # the search's record (MixedResult.to_json)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out = {"plans": {k: v.to_json() for k, v in self.plans.items()}, "calibration": self.calibration,
               "seconds": round(self.seconds, 1)}
        if self.mixed is not None:
            out["mixed"] = self.mixed
        return out


def parse_precision(text: str) -> str:
    p = (text or "fp32").strip().lower()
    if p not in PRECISIONS:
        raise InputError(f"unknown precision {text!r}", f"choose one of: {', '.join(PRECISIONS)}")
    return p


def calibration_clips(spec: "PipelineSpec", calib_dir: str | Path | None = None, n: int = DEFAULT_CLIPS,
                      seed: int = 0, seconds: float | None = None) -> list["Clip"]:
    """(image [H,W,3] in [0,1], audio [S] 16 kHz) pairs: from calib_dir, or synthetic."""
    if n < 1:
        raise InputError(f"--calib-clips {n}", "use at least 1 calibration clip")
    if calib_dir is None:
        from edgeth.bundle.export import sample_input

        return [sample_input(spec, seed + i, seconds) for i in range(n)]
    root = Path(calib_dir)
    if not root.is_dir():
        raise InputError(f"--calib {root} is not a folder", "pass a folder of portrait images with matching .wav files")
    pairs = []
    for img in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXT):
        wav = img.with_suffix(".wav")
        if wav.exists():
            pairs.append((img, wav))
    if not pairs:
        raise InputError(f"no calibration clips in {root}", "it needs <name>.png (or .jpg) + <name>.wav pairs")
    rate = int(spec.audio.get("sample_rate", 16000))
    return [_read_pair(i, w, spec.image_size, rate) for i, w in pairs[:n]]


def _read_pair(image: Path, wav: Path, size: int, rate: int) -> "Clip":
    """Portrait [size, size, 3] in [0, 1] and mono audio at `rate`, through edgeth.data.video when
    it is installed; else PIL + the wave module (16-bit PCM), linear resampling."""
    try:
        from edgeth.data.video import read_audio, read_image
    except ModuleNotFoundError:
        import wave

        from PIL import Image

        with Image.open(image) as im:
            img = np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR), np.float32) / 255.0
        with wave.open(str(wav), "rb") as w:
            if w.getsampwidth() != 2:
                raise InputError(f"{wav.name}: only 16-bit PCM .wav is readable here", "convert it to 16-bit PCM")
            raw = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0
            audio = raw.reshape(-1, w.getnchannels()).mean(1)
            src = w.getframerate()
        if src != rate:
            t = np.arange(int(len(audio) * rate / src)) * (src / rate)
            audio = np.interp(t, np.arange(len(audio)), audio).astype(np.float32)
        return img, audio
    return read_image(image, size=size), read_audio(wav, sample_rate=rate)


def make_plans(programs: Sequence["Program"], spec: "PipelineSpec", precision: str, *,
               budget: str | dict[str, float] | None = None, clips: Sequence["Clip"] | None = None,
               calib_dir: str | Path | None = None, calib_clips: int = DEFAULT_CLIPS,
               cache_dir: str | Path | None = None, seed: int = 0, options: dict[str, Any] | None = None,
               threads: int | None = None, progress: bool = True, verify_target: str | None = None,
               quantize_only: Sequence[str] | None = None) -> PlanResult:
    """One PrecisionPlan per program for `precision` (see module docstring).

    For mixed, `verify_target` (a target that exports and runs here, e.g. executorch) checks
    the searched plan end to end on the real backend and floats more layers if it misses.
    `quantize_only` names the programs that get `precision` (mixed: the ones the search may
    quantize); the others stay FP32 (`--quantize-only renderer`: an INT8 renderer beside an
    FP32 denoiser, and a mixed search over the renderer's layers alone)."""
    from edgeth.quantize.calibrate import cached_capture

    t0 = time.time()
    precision = parse_precision(precision)
    only = _quantize_only(programs, quantize_only)
    if budget is not None and precision != "mixed":
        raise InputError(f"--budget applies to --precision mixed, not {precision}", "drop --budget or use mixed")
    if precision == "mixed":
        from edgeth.quantize.budget import Budget

        budget = Budget.parse(budget or "frames:psnr=35", spec)  # a bad budget fails before any work
    if precision == "fp32":
        return PlanResult({p.name: PrecisionPlan("fp32") for p in programs})
    options = dict(options or {})
    if clips is None:
        clips = calibration_clips(spec, calib_dir, calib_clips, seed)
    calib = cached_capture(cache_dir, programs, spec, clips, seed=seed, progress=progress, **options)
    summary = {"key": calib.key, "calls": {p: calib.count(p) for p in calib.programs()}, "clips": len(clips),
               "clip_source": str(Path(calib_dir).resolve()) if calib_dir else "synthetic", "seed": seed,
               "options": {k: v for k, v in options.items() if isinstance(v, (int, float, str, bool))},
               "cached": bool(calib.source.get("cached"))}
    if precision != "mixed":
        plans = {p.name: fixed_plan(p) or (PrecisionPlan(precision, calibration=calib.for_program(p.name),
                                                         notes={"calibration_key": calib.key}) if p.name in only
                                           else PrecisionPlan("fp32", notes={"kept": "not in --quantize-only"}))
                 for p in programs}
        return PlanResult(plans, summary, None, time.time() - t0)
    return _mixed(programs, spec, calib, clips, budget, seed, options, threads, progress, summary, t0,
                  verify_target, only)


def _quantize_only(programs: Sequence["Program"], names: Sequence[str] | None) -> set[str]:
    """The program names `quantize_only` selects (all when None); unknown names are an error listing the programs."""
    have = [p.name for p in programs]
    if names is None:
        return set(have)
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in have]
    if unknown or not names:
        raise InputError(f"--quantize-only names no program {', '.join(unknown) or '(empty)'}",
                         f"programs: {', '.join(have)}")
    return set(names)


def fixed_plan(program: "Program") -> PrecisionPlan | None:
    """The plan of a program pinned to one precision (`meta["precision"]`, e.g. the FP32 log-mel
    frontend: a DFT and a log, whose INT8/FP16 versions lose the quiet bins), else None."""
    pinned = program.meta.get("precision")
    if not pinned:
        return None
    return PrecisionPlan(pinned, notes={"pinned": f"{program.name} always exports at {pinned} (program meta)"})


def _mixed(programs, spec, calib: "CalibrationSet", clips, budget, seed, options, threads, progress, summary,
           t0, verify_target: str | None, only: set[str]) -> PlanResult:
    from edgeth.quantize.budget import Budget
    from edgeth.quantize.mixed import search_mixed
    from edgeth.runtime_py.pipelines import SeededNoise, get_pipeline

    b = Budget.parse(budget, spec)
    drive = get_pipeline(spec.kind)
    image, audio = clips[0]

    def run(call):
        res = drive(spec, call, image=image, audio=audio, noise=SeededNoise(seed), progress=False, **options)
        return b.output(res)

    verify, timing = None, {}
    if verify_target:
        from edgeth.quantize.calibrate import torch_call

        t = time.perf_counter()
        reference = run(torch_call(programs))
        timing["eager_fp32_s"] = round(time.perf_counter() - t, 3)

        def verify(plans):
            return backend_quality(programs, plans, verify_target, run, b, reference, threads, timing)

    searched = [p.name for p in programs if fixed_plan(p) is None and p.name in only]  # only: make_plans' selection
    result = search_mixed(list(programs), calib, run, b, threads=threads, progress=progress, verify=verify,
                          quantize=searched)
    plans = {**result.plans, **{p.name: fixed_plan(p) for p in programs if fixed_plan(p) is not None}}
    return PlanResult(plans, summary, {**result.to_json(), "verified_on": verify_target, "timing": timing},
                      time.time() - t0)


def backend_quality(programs, plans, target: str, run, budget, reference: np.ndarray, threads: int | None = None,
                    timing: dict[str, float] | None = None) -> float:
    """End-to-end quality (budget metric) of `plans` exported to `target` and run on its runtime.

    Programs whose plan is FP32 run in PyTorch eager (the FP32 backends match it to 1e-4).
    `timing` (if given) receives the pipeline's wall time on the backend (`backend_s`)."""
    import tempfile

    from edgeth.quantize.calibrate import torch_call
    from edgeth.targets import get_target
    from edgeth.targets.common import runner_entry

    tgt = get_target(target)
    eager = torch_call(programs)
    with tempfile.TemporaryDirectory(prefix="edgeth-mixed-verify-") as td:
        runners = {}
        for p in programs:
            if plans[p.name].precision == "fp32":
                continue
            art = tgt.export(p, plans[p.name], Path(td))
            runners[p.name] = tgt.runner(Path(td), runner_entry(p, art), threads)
        t = time.perf_counter()
        got = run(lambda name, xs: list(runners[name](*xs)) if name in runners else eager(name, xs))
        if timing is not None:
            timing["backend_s"] = round(time.perf_counter() - t, 3)
    return budget.quality(reference, got)
