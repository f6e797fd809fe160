"""Test support for the bundle/runtime tests: a small model family and its pipeline driver.

`bundlefix` is a real (tiny) ModelFamily built on tests/fixture_programs.py's fixture programs
(renderer: conv + grid_sample; denoiser: attention + LayerNorm). Its driver
`bundlefix_test` is real host code: per window it samples motion by a few denoiser steps
from named noise, then renders every frame from the portrait and the motion code. It
exports in seconds, so the error-path and format tests do not need a trained IF-MDM run.

Registered only inside `registered()` so other test modules never see it.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import subprocess
import wave
from pathlib import Path

import numpy as np

FAMILY = "bundlefix"
KIND = "bundlefix_test"
SIZE, WINDOW, MOTION, CODE, FEAT = 32, 8, 12, 16, 16
SR, FPS = 16000, 25


class FixtureFamily:
    name = FAMILY
    presets = ("tiny",)

    def load(self, run_dir, device: str = "cpu"):
        from safetensors.torch import load_file

        from fixture_programs import fixture_programs

        cfg = json.loads((Path(run_dir) / "fixture.json").read_text())
        progs = {p.name: p for p in fixture_programs(int(cfg["seed"]))}
        sd = load_file(str(Path(run_dir) / "weights.safetensors"))
        for name, p in progs.items():
            p.module.load_state_dict({k[len(name) + 1:]: v for k, v in sd.items() if k.startswith(name + ".")})
            p.module.eval()
        return progs

    def programs(self, run):
        return [run["denoiser"], run["renderer"]]

    def pipeline(self, run):
        from edgeth.program import PipelineSpec

        return PipelineSpec(kind=KIND, programs=("denoiser", "renderer"), fps=FPS, image_size=SIZE,
                            audio={"sample_rate": SR, "samples_per_frame": SR // FPS},
                            sampler={"steps": 3, "step_size": 0.3}, window={"length": WINDOW},
                            normalization={"image": [0, 1]})


def make_run(run_dir: Path, seed: int = 0) -> Path:
    """A RUN/ folder: fixture.json + weights.safetensors (weights depend on seed)."""
    from safetensors.torch import save_file

    from fixture_programs import fixture_programs

    run_dir.mkdir(parents=True, exist_ok=True)
    sd = {}
    for p in fixture_programs(seed):
        sd.update({f"{p.name}.{k}": v.contiguous() for k, v in p.module.state_dict().items()})
    save_file(sd, str(run_dir / "weights.safetensors"))
    (run_dir / "fixture.json").write_text(json.dumps({"family": FAMILY, "preset": "tiny", "seed": seed}))
    return run_dir


def _features(wave_: np.ndarray, n_frames: int) -> np.ndarray:
    """[n_frames, FEAT]: mean |sample| over FEAT chunks of every frame's samples."""
    spf = SR // FPS
    w = np.pad(wave_, (0, max(0, n_frames * spf - wave_.size)))[: n_frames * spf]
    return np.abs(w.reshape(n_frames, FEAT, spf // FEAT)).mean(-1).astype(np.float32) * 10


def drive(spec, call, *, image, audio, noise, progress=False, steps=None):
    """The `bundlefix_test` pipeline: audio -> motion (denoiser steps per window) -> frames."""
    from edgeth.runtime_py.pipelines import PipelineResult

    steps = int(steps or spec.sampler["steps"])
    n_frames = max(1, math.ceil(len(audio) / (SR // FPS)))
    n_win = math.ceil(n_frames / WINDOW)
    feats = _features(np.asarray(audio, np.float32), n_win * WINDOW)
    iy = np.linspace(0, image.shape[0] - 1, SIZE).round().astype(int)
    ix = np.linspace(0, image.shape[1] - 1, SIZE).round().astype(int)
    img = np.ascontiguousarray(image[iy][:, ix, :3].transpose(2, 0, 1)[None], dtype=np.float32)
    motion = np.zeros((n_win * WINDOW, MOTION), np.float32)
    for w in range(n_win):
        x = noise.normal(f"window{w}/x_T", (1, WINDOW, MOTION))
        a = feats[w * WINDOW:(w + 1) * WINDOW][None]
        for k in range(steps):
            t = np.full((1, 1), (steps - k) / steps, np.float32)
            x = (x - spec.sampler["step_size"] * call("denoiser", [x, t, a])[0]).astype(np.float32)
        motion[w * WINDOW:(w + 1) * WINDOW] = np.tanh(x[0])
    motion = motion[:n_frames]
    frames = np.zeros((n_frames, SIZE, SIZE, 3), np.float32)
    for f in range(n_frames):
        code = np.concatenate([motion[f], np.zeros(CODE - MOTION, np.float32)])[None]
        frames[f] = call("renderer", [img, code])[0][0].transpose(1, 2, 0)
    return PipelineResult(frames=frames, fps=FPS, extras={"motion": motion, "windows": n_win})


@contextlib.contextmanager
def registered():
    """Register the fixture family and driver for the duration of the block."""
    from edgeth.models import MODELS
    from edgeth.runtime_py.pipelines import PIPELINES

    added = []
    if FAMILY not in MODELS:
        MODELS.add(FAMILY, FixtureFamily())
        added.append((MODELS, FAMILY))
    if KIND not in PIPELINES:
        PIPELINES.add(KIND, drive)
        added.append((PIPELINES, KIND))
    try:
        yield
    finally:
        for reg, name in added:
            reg.unregister(name)


def sample_media(seconds: float = 0.64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random portrait [48, 40, 3] and a speech-like waveform."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:48, 0:40] / 40.0
    image = np.stack([0.5 + 0.4 * np.sin(3 * xx + c) * np.cos(2 * yy) for c in range(3)], -1).astype(np.float32)
    t = np.arange(int(seconds * SR)) / SR
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
             + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    return image, audio


def write_media(folder: Path, seconds: float = 0.64) -> tuple[Path, Path]:
    """sample_media as portrait.png + speech.wav (16-bit PCM)."""
    from PIL import Image

    image, audio = sample_media(seconds)
    folder.mkdir(parents=True, exist_ok=True)
    png, wav = folder / "portrait.png", folder / "speech.wav"
    Image.fromarray((image * 255).round().astype(np.uint8)).save(png)
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return png, wav


def build_bundle(root: Path, targets: list[str] | None = None, tar: bool = True) -> dict[str, Path]:
    """RUN/ of the fixture family and its bundle (+ .tar) for every target that can export here
    (those that cannot run here, e.g. Core ML on Linux, are exported but not run)."""
    from edgeth.bundle.export import export_bundle

    run = make_run(root / "run")
    targets = targets if targets is not None else exportable_targets()
    image, audio = sample_media()
    with registered():
        res = export_bundle(run, root / "bundle", targets=targets, image=image, audio=audio, tar=tar, progress=False)
    return {"run": run, "bundle": res.path, "tar": res.tar, "root": root}


def exportable_targets() -> list[str]:
    from edgeth.targets import get_target, target_names

    return [t for t in target_names() if get_target(t).available().ok]


def runnable_targets() -> list[str]:
    """Targets that can both export and run their artifacts on this machine."""
    from edgeth.targets import get_target, target_names

    return [t for t in target_names() if get_target(t).available().ok and get_target(t).runtime_available().ok]


def runnable_backends() -> list[str]:
    """torch, the backend of every runnable target, and every simulator whose target exports here
    (coreml-sim runs the .mlpackage on any OS)."""
    from edgeth.runtime_py.backends import BACKENDS, SIMULATORS, backend_for_target
    from edgeth.targets import get_target

    sims = [b for b in SIMULATORS if get_target(BACKENDS[b]).available().ok]
    return ["torch"] + [backend_for_target(t) for t in runnable_targets()] + sims


def cli(*args: str) -> subprocess.CompletedProcess:
    """`edgeth ...` in-process (through edgeth.cli.main, as the console script runs it)."""
    from edgeth.cli import main

    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return subprocess.CompletedProcess(["edgeth", *args], code, out.getvalue(), err.getvalue())


def assert_clean_error(r: subprocess.CompletedProcess, code: int, *words: str) -> None:
    """Exit `code`, exactly one `error:` line on stderr, no traceback, and the words in it."""
    assert r.returncode == code, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert w.lower() in lines[0].lower(), lines[0]


def other_executions(bundle, target: str, name: str, full: bool = True):
    """(label, run) for the same artifact run other ways than verify runs it: thread counts, and
    for ONNX Runtime its graph-optimization levels. `full=False`: one cheap other way each
    (1 thread; ONNX Runtime with graph optimizations off), what the conformance suite runs."""
    from edgeth.targets import get_target

    for threads in ((1, 2) if full else (1,)):
        r = get_target(target).runner(bundle.artifact_dir(target), bundle.entry(name, target), threads)
        yield f"{threads} thread(s)", lambda ins, r=r: list(r(*ins))
    if target == "onnx":
        import onnxruntime as ort

        from edgeth.targets.onnx.runner import session as onnx_session

        path = bundle.artifact_dir("onnx") / bundle.entry(name, "onnx")["files"][0]
        levels = (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
        for level in (levels if full else levels[:1]):
            for threads in ((1, 2) if full else (1,)):
                sess = onnx_session(path, threads, level)
                names = [i.name for i in sess.get_inputs()]
                yield f"onnxruntime {level.name}, {threads} thread(s)", \
                    lambda ins, s=sess, n=names: s.run(None, dict(zip(n, ins)))


def gate1_across_executions(bundle, target: str, full: bool = True) -> list[str]:
    """Every program's gate-1 (runtime/...) checks for each other execution of its artifact:
    the failures as "program via label: check: worst" (empty: the bounds hold)."""
    from edgeth.runtime_py.verify import compare_program

    bad = []
    for name in bundle.program_names:
        calls = bundle.golden_calls(name)
        for label, run in other_executions(bundle, target, name, full):
            checks = [c for c in compare_program(bundle, name, target, [run(ins) for ins, _ in calls], calls)
                      if c.name.startswith("runtime/")]
            if not checks:
                bad.append(f"{name} via {label}: no gate-1 checks (no expected outputs recorded)")
            bad += [f"{name} via {label}: {c.name}: {c.worst}" for c in checks if not c.passed]
    return bad

