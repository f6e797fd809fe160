"""GPU check: train each family's `mobile` preset briefly with bf16 autocast (1 GPU, then
under torchrun DDP where the GPUs allow), then eager and ONNX Runtime inference fps.

  python benchmarks/gpu_check.py                        # on the GPU machine, < 8 minutes
  python benchmarks/gpu_check.py --device cpu --steps 2 --preset tiny --size 64   # dry run here

Runs from a fresh clone with only what the lent GPU machine has (Python 3.12, torch 2.11,
onnxruntime, onnxscript; no PyAV, no executorch, no internet) plus edgeth's own wheel:
  here:   python -m pip wheel --no-deps --no-build-isolation -w .whl .
  there:  pip install --no-index --no-deps --target /tmp/site .whl/*.whl; PYTHONPATH=/tmp/site python3 benchmarks/gpu_check.py
The corpus is synthesized there, lossless (npz frames + wav), so no video codec is needed.
Prints, per family: steps/s and peak memory per training stage, the loss curve (every logged
step), then end-to-end fps of eager PyTorch and of the exported ONNX programs on ONNX Runtime
(CUDAExecutionProvider when the installed onnxruntime has it; the providers used are printed).
Every section that cannot run prints why and the rest goes on.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_memory_mb(device: str) -> float:
    import resource

    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (KiB on Linux)


def loss_curves(run: Path) -> dict[str, list[tuple[int, float, float]]]:
    """{stage: [(step, loss, sec_per_step)]} from the run's *.log.jsonl."""
    out = {}
    for f in sorted(run.glob("*.log.jsonl")):
        rows = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        out[f.name.split(".")[0]] = [(r["step"], r["loss"], r.get("sec_per_step", float("nan"))) for r in rows]
    return out


def train_one(fam, name: str, data: Path, out: Path, a) -> Path:
    import torch

    if a.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    fam.train(data, out, preset=a.preset, max_steps=a.steps, device=a.device, seed=0, resume=False, progress=False)
    wall = time.perf_counter() - t0
    curves = loss_curves(out)
    n = sum(len(c) and c[-1][0] for c in curves.values())
    print(f"[{name}] 1 process on {a.device}: {n} steps in {wall:.1f} s ({n / wall:.2f} steps/s incl. start-up), "
          f"peak memory {peak_memory_mb(a.device):.0f} MB")
    for stage, c in curves.items():
        sps = [s for *_, s in c if s == s]
        print(f"  {stage}: {1 / (sum(sps) / len(sps)) if sps else float('nan'):.2f} steps/s; loss "
              + " ".join(f"{step}:{loss:.4g}" for step, loss, _ in c))
    return out


def train_ddp(name: str, data: Path, out: Path, a) -> None:
    import torch

    gpus = torch.cuda.device_count() if a.device.startswith("cuda") else 0
    nproc = a.ddp
    if a.device.startswith("cuda") and nproc > gpus:
        print(f"[{name}] DDP x{nproc}: skipped — NCCL needs one GPU per process and this machine has {gpus}")
        return
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "edgeth",
           "train", name, "--data", str(data), "--preset", a.preset, "--out", str(out), "--max-steps", str(a.steps),
           "--device", a.device.split(":")[0]]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.ddp_timeout)
    wall = time.perf_counter() - t0
    if r.returncode:
        print(f"[{name}] DDP x{nproc}: failed ({r.returncode}): {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
        return
    curves = loss_curves(out)
    print(f"[{name}] DDP x{nproc} on {a.device}: {wall:.1f} s wall; "
          + "; ".join(f"{s}: last loss {c[-1][1]:.4g} at step {c[-1][0]}" for s, c in curves.items() if c))


def ort_call(bundle, providers: list[str]):
    """A ProgramCall over the bundle's .onnx files on the given ONNX Runtime providers."""
    import numpy as np
    import onnxruntime as ort

    sessions = {}
    for name in bundle.program_names:
        files = bundle.program(name)["artifacts"]["onnx"]["files"]
        sessions[name] = ort.InferenceSession(str(bundle.artifact_dir("onnx") / files[0]), providers=providers)

    def call(name, xs):
        s = sessions[name]
        return s.run(None, {i.name: np.ascontiguousarray(x) for i, x in zip(s.get_inputs(), xs)})

    return call, sessions[bundle.program_names[0]].get_providers()


def time_pipeline(label: str, drive, spec, call, image, audio, a) -> None:
    from edgeth.runtime_py.pipelines import SeededNoise

    def once():
        return drive(spec, call, image=image, audio=audio, noise=SeededNoise(0), steps=a.sampler_steps)

    n = len(once().frames)  # warm-up (CUDA kernels, ORT graph)
    times = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    best = sorted(times)[len(times) // 2]
    print(f"  {label}: {n} frames in {best * 1e3:.0f} ms (median of {a.iters}) = {n / best:.1f} fps")


def inference(fam, name: str, run: Path, work: Path, a) -> None:
    import numpy as np

    from edgeth.bundle.export import export_bundle
    from edgeth.bundle.io import load_bundle
    from edgeth.runtime_py.pipelines import get_pipeline
    from edgeth.runtime_py.torch_backend import torch_call

    r = fam.load(run, a.device)
    spec = fam.pipeline(r)
    drive = get_pipeline(spec.kind)
    rng = np.random.default_rng(0)
    image = rng.random((spec.image_size, spec.image_size, 3)).astype(np.float32)
    audio = (0.1 * rng.standard_normal(int(a.clip_seconds * 16000))).astype(np.float32)
    print(f"[{name}] inference, {a.clip_seconds:g} s clip, {a.sampler_steps} DDIM steps, {spec.image_size}^2:")
    time_pipeline(f"eager fp32 on {a.device}", drive, spec, torch_call(fam.programs(r), device=a.device), image,
                  audio, a)
    try:
        export_bundle(run, work / f"{name}-onnx", model=name, targets=["onnx"], precision="fp32", progress=False,
                      options={"steps": a.sampler_steps})
        import onnxruntime as ort

        want = ["CUDAExecutionProvider", "CPUExecutionProvider"] if a.device.startswith("cuda") else ["CPUExecutionProvider"]
        providers = [p for p in want if p in ort.get_available_providers()]
        call, used = ort_call(load_bundle(work / f"{name}-onnx"), providers)
        time_pipeline(f"onnxruntime fp32 ({', '.join(used)})", drive, spec, call, image, audio, a)
    except Exception as e:  # reported, not hidden: the rest of the check goes on
        print(f"  onnxruntime: failed — {type(e).__name__}: {str(e).splitlines()[0][:300]}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    ap.add_argument("--models", default=None, help="comma-separated families (default: every one with the preset)")
    ap.add_argument("--preset", default="mobile")
    ap.add_argument("--steps", type=int, default=300, help="training steps per stage")
    ap.add_argument("--ddp", type=int, default=2, help="torchrun processes for the DDP run (0: skip)")
    ap.add_argument("--ddp-timeout", type=float, default=180.0)
    ap.add_argument("--size", type=int, default=256, help="corpus frame size (the preset's image size)")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--clip-seconds", type=float, default=2.0, help="inference clip length")
    ap.add_argument("--sampler-steps", type=int, default=10)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--work", type=Path, default=None, help="folder for corpus/runs (default: a temp dir)")
    a = ap.parse_args(argv)
    import torch

    from edgeth.data.synth import generate_corpus
    from edgeth.models import get_model, model_names

    a.device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    print(f"torch {torch.__version__}, python {sys.version.split()[0]}, device {a.device}"
          + (f" ({torch.cuda.get_device_name(0)})" if a.device.startswith("cuda") else ""))
    names = a.models.split(",") if a.models else [n for n in model_names() if a.preset in get_model(n).presets]
    with tempfile.TemporaryDirectory() as tmp:
        work = a.work or Path(tmp)
        data = work / "data"
        t0 = time.perf_counter()
        if not (data / "manifest.json").exists():
            generate_corpus(data, clips=a.clips, seconds=a.seconds, size=a.size, lossless=True, video=False,
                            progress=False)
        print(f"corpus: {a.clips} clips x {a.seconds:g} s at {a.size}^2, lossless, {time.perf_counter() - t0:.1f} s")
        for name in names:
            fam = get_model(name)
            run = train_one(fam, name, data, work / f"{name}-run", a)
            if a.ddp:
                train_ddp(name, data, work / f"{name}-ddp", a)
            inference(fam, name, run, work, a)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
