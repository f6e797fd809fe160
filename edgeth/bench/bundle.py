"""`edgeth bench BUNDLE`: every program and the whole audio -> video pipeline, per backend,
next to PyTorch eager FP32 (the bundle's reference checkpoint) measured in the same run.

Programs are fed their first golden call's inputs; the pipeline runs the golden portrait
and speech (or `frames` frames of it, with seeded noise). Measurement lives in edgeth.bench.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

EAGER = "torch"  # the backend name of PyTorch eager FP32 in edgeth.runtime_py


def runnable_backends(bundle, wanted: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """(backends to measure, {backend: why skipped}); eager is always first when it can run."""
    from edgeth.runtime_py.backends import available_backends, target_for_backend

    avail = available_backends(bundle)
    names = list(avail) if not wanted else [b for b in dict.fromkeys([EAGER, *wanted])]
    for b in names:
        target_for_backend(b)  # unknown names list the backends
    ok = [b for b in names if avail[b].ok]
    skipped = {b: avail[b].reason for b in names if not avail[b].ok}
    return ok, skipped


def _eager_sizes(bundle) -> dict[str, int]:
    """Bytes of parameters + buffers of each reference program (eager's 'file size')."""
    from edgeth.bundle.reference import load_reference_programs

    progs = bundle.cache.get("torch_programs")
    if progs is None:
        progs = bundle.cache["torch_programs"] = load_reference_programs(bundle)
    out = {}
    for name, p in progs.items():
        ts = list(p.module.parameters()) + list(p.module.buffers())
        out[name] = int(sum(t.numel() * t.element_size() for t in ts))
    return out


def _artifact_size(bundle, program: str, target: str) -> int:
    from edgeth.targets.common import path_size

    files = bundle.program(program)["artifacts"][target]["files"]
    return path_size(bundle.artifact_dir(target) / files[0])  # a .pte, .onnx or .mlpackage folder


def _precision(bundle, backend: str) -> str:
    from edgeth.runtime_py.backends import target_for_backend

    t = target_for_backend(backend)
    return "fp32" if t is None else bundle.manifest["targets"][t].get("precision", "fp32")


def _pipeline_inputs(bundle, frames: int | None):
    """(image, audio, noise-or-None, options): the golden run, or `frames` frames of its speech."""
    from edgeth.runtime_py.pipeline import Pipeline

    g = bundle.pipeline_golden()
    opts = dict(bundle.manifest["golden"].get("options", {}))
    golden_t = int(g["frames"].shape[0])
    if not frames or frames == golden_t:
        return g["image"], g["audio"], Pipeline.golden_noise(bundle), opts, golden_t
    spec = bundle.pipeline_spec()
    sr = int(spec.audio.get("sample_rate", 16000))
    need = int(round(frames / spec.fps * sr))
    audio = np.resize(g["audio"], need).astype(np.float32)  # tiles the speech when asked for more
    return g["image"], audio, None, opts, frames


def bench_bundle(bundle_path: str | Path | Any, *, backends: list[str] | None = None, frames: int | None = None,
                 iters: int = 20, pipeline_iters: int = 3, max_seconds: float = 5.0, threads: int | None = None,
                 peak_gflops: float | None = None, programs: bool = True, pipeline: bool = True,
                 progress: bool = True, stream_ms: float | None = 200.0, memory: bool = True) -> dict[str, Any]:
    """Measure a bundle (see module docstring). Returns the JSON-able result of edgeth.bench.
    stream_ms: also stream the pipeline's speech in chunks of this length once per backend and
    add its latency figures (edgeth.bench.stream) to the end-to-end row as `stream`.
    memory=False: no peak-memory figures (and no full garbage collection per measurement)."""
    from tqdm import tqdm

    from edgeth.bench import SCHEMA, add_flops, add_ratios, machine_info, matmul_peak_gflops, measure, set_threads
    from edgeth.bundle.io import Bundle, load_bundle
    from edgeth.runtime_py.backends import program_call, target_for_backend
    from edgeth.runtime_py.pipeline import Pipeline

    bundle = bundle_path if isinstance(bundle_path, Bundle) else load_bundle(bundle_path)
    threads = set_threads(threads)
    if peak_gflops is None:
        peak_gflops = matmul_peak_gflops(threads=threads)
    ok, skipped = runnable_backends(bundle, backends)
    eager_size = _eager_sizes(bundle) if EAGER in ok else {}
    rows: list[dict[str, Any]] = []
    pipe_rows: list[dict[str, Any]] = []
    names = bundle.program_names if programs else []
    work = len(ok) * (len(names) + (1 if pipeline else 0))
    bar = tqdm(total=work, desc="bench", unit="run", disable=not progress, leave=False)
    for backend in ok:
        target = target_for_backend(backend)
        prec = _precision(bundle, backend)
        for name in names:
            bar.set_postfix_str(f"{backend}:{name}")
            inputs = bundle.golden_calls(name)[0][0]

            def load(backend=backend, name=name, inputs=inputs):
                bundle.cache.pop("torch_programs", None)  # eager load time includes rebuilding the module
                run = program_call(bundle, backend, threads).runner(name)
                return lambda: run(*inputs)

            row = measure(name, load, iters=iters, max_seconds=max_seconds, memory=memory)
            row.update(program=name, backend=backend, precision=prec,
                       size_bytes=eager_size.get(name) if target is None else _artifact_size(bundle, name, target))
            add_flops(row, bundle.program(name).get("flops"), peak_gflops)
            rows.append(row)
            bar.update(1)
        if pipeline:
            bar.set_postfix_str(f"{backend}:end-to-end")
            image, audio, noise, opts, n_frames = _pipeline_inputs(bundle, frames)

            held: dict[str, Any] = {}

            def load_pipe(backend=backend):
                bundle.cache.pop("torch_programs", None)
                pipe = held["pipe"] = Pipeline(bundle, backend, threads)
                for n in bundle.program_names:  # load every runner now, so load_s covers it
                    pipe.call.runner(n)
                return lambda: pipe.run(image, audio, seed=0, noise=noise, **opts)

            row = measure("end-to-end", load_pipe, warmup=1, iters=pipeline_iters, max_seconds=max_seconds * 4,
                          memory=memory)
            sizes = [r["size_bytes"] for r in rows if r["backend"] == backend and r.get("size_bytes") is not None]
            row.update(backend=backend, precision=prec, frames=n_frames, fps=n_frames * 1e3 / row["p50_ms"],
                       size_bytes=sum(sizes) if sizes else None)
            if stream_ms:
                from edgeth.bench.stream import measure_stream

                row["stream"] = measure_stream(held["pipe"], image, audio, stream_ms, seed=0, noise=noise, **opts)[1]
            pipe_rows.append(row)
            bar.update(1)
    bar.close()
    add_ratios(rows, ("program",), EAGER)
    add_ratios(pipe_rows, ("frames",), EAGER)
    return {"schema": SCHEMA, "bundle": str(bundle.source), "model": bundle.family,
            "bundle_precision": bundle.manifest.get("precision"), "machine": machine_info(threads, peak_gflops),
            "skipped": skipped, "programs": rows, "pipeline": pipe_rows}
