"""Benchmark measurement core: latency percentiles, calls/frames per second, peak memory,
load time, file size and achieved GFLOP/s, always next to PyTorch eager FP32 measured in
the same run (absolute times on shared machines are noise; the ratios are the figure).

Everything here works over plain callables (numpy in, numpy out, or torch eager), so the
same code measures a program on any backend and the whole audio -> video pipeline.
`edgeth.bench.bundle.bench_bundle` applies it to a bundle; `benchmarks/*.py` and
`edgeth bench` call that.

Result rows (JSON-able dicts):
  program rows    {program, backend, precision, load_s, p50_ms, p90_ms, mean_ms, calls,
                   per_s, peak_mem_bytes, size_bytes, flops, gflops, peak_fraction,
                   speed_ratio (eager p50 / this p50), mem_ratio, size_ratio}
  pipeline rows   {backend, precision, frames, load_s, p50_ms, p90_ms, fps, peak_mem_bytes,
                   size_bytes, speed_ratio}
"""
from __future__ import annotations

import contextlib
import gc
import os
import platform
import statistics
import threading
import time
from typing import Any, Callable

import numpy as np

SCHEMA = 1


def percentile(samples: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty sample list."""
    if not samples:
        raise ValueError("percentile of no samples")
    return float(np.percentile(np.asarray(samples, dtype=np.float64), q))


def time_calls(fn: Callable[[], Any], *, warmup: int = 2, iters: int = 20, max_seconds: float = 10.0,
               min_iters: int = 3) -> list[float]:
    """Wall times (seconds) of `fn()` after `warmup` untimed calls.

    Stops after `iters` calls or once `max_seconds` have passed (but never before
    `min_iters`), so a slow backend cannot blow the time budget.
    """
    for _ in range(max(warmup, 0)):
        fn()
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < max(iters, 1):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
        if len(samples) >= min_iters and time.perf_counter() - start > max_seconds:
            break
    return samples


def summarize(samples: list[float]) -> dict[str, float]:
    """{p50_ms, p90_ms, mean_ms, calls, per_s} from wall times in seconds."""
    p50 = percentile(samples, 50) * 1e3
    return {"p50_ms": p50, "p90_ms": percentile(samples, 90) * 1e3,
            "mean_ms": statistics.fmean(samples) * 1e3, "calls": len(samples),
            "per_s": 1e3 / p50 if p50 > 0 else float("inf")}


def current_private() -> int:
    """This process's resident anonymous memory in bytes (Linux: statm resident - shared), i.e.
    what it allocated itself; file-backed pages (mapped libraries), which the kernel may drop
    under memory pressure at any moment, are left out. Elsewhere ru_maxrss."""
    try:
        with open("/proc/self/statm") as f:
            fields = f.read().split()
        return (int(fields[1]) - int(fields[2])) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return _max_rss()


def _max_rss() -> int:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if platform.system() == "Darwin" else r * 1024)


class PeakMemory:
    """Context manager: the largest increase of resident anonymous memory (`current_private`)
    over its starting value while inside.

    A background thread samples every `interval` seconds (it sleeps between samples, so it
    barely competes with the measured code). Native allocations (ExecuTorch, ONNX Runtime,
    torch) count, unlike tracemalloc's Python-only view. File-backed pages do not: on a loaded
    machine the kernel may reclaim pages of mapped libraries while the code runs, which makes the
    plain RSS increase undercount an allocation. What it sees is memory that became resident:
    pages an allocator hands back from its free lists were resident already and do not count.
    """

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.base = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, current_private())
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        gc.collect()
        self.base = current_private()
        self.peak = self.base
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, current_private())

    @property
    def increase(self) -> int:
        return max(self.peak - self.base, 0)


def set_threads(threads: int | None) -> int:
    """Pin torch's intra-op threads (the eager baseline); returns the count in force."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


def matmul_peak_gflops(n: int = 1024, reps: int = 5, threads: int | None = None) -> float:
    """The machine's measured FP32 peak: best of `reps` n x n matmuls in torch, in GFLOP/s."""
    import torch

    set_threads(threads)
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    with torch.inference_mode():
        torch.mm(a, b)  # warm up
        best = min(time_calls(lambda: torch.mm(a, b), warmup=0, iters=reps, max_seconds=5.0))
    return 2.0 * n ** 3 / best / 1e9


def machine_info(threads: int | None = None, peak_gflops: float | None = None) -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": threads or torch.get_num_threads(),
            "system": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "torch": torch.__version__, "peak_gflops": peak_gflops}


def measure(name: str, load: Callable[[], Callable[[], Any]], *, warmup: int = 2, iters: int = 20,
            max_seconds: float = 10.0, memory: bool = True) -> dict[str, Any]:
    """Load (timed) then time one workload. `load()` returns a zero-argument callable.

    Peak memory covers load plus the warm-up calls; the timed loop runs without it.
    memory=False skips it (peak_mem_bytes None): no full garbage collection before the load,
    which costs seconds in a process that holds large graphs (a smoke run of every program).
    """
    with (PeakMemory() if memory else contextlib.nullcontext()) as mem:
        t0 = time.perf_counter()
        fn = load()
        load_s = time.perf_counter() - t0
        for _ in range(max(warmup, 1)):
            fn()
    row: dict[str, Any] = {"name": name, "load_s": load_s, "peak_mem_bytes": mem.increase if memory else None}
    row.update(summarize(time_calls(fn, warmup=0, iters=iters, max_seconds=max_seconds)))
    del fn  # collected by the next measurement's PeakMemory (one full gc per measurement, not two)
    return row


def add_flops(row: dict[str, Any], flops: int | None, peak_gflops: float | None) -> dict[str, Any]:
    """Achieved GFLOP/s for one call at p50, and its fraction of the matmul peak."""
    row["flops"] = flops
    row["gflops"] = flops / (row["p50_ms"] * 1e-3) / 1e9 if flops and row.get("p50_ms") else None
    row["peak_fraction"] = row["gflops"] / peak_gflops if row["gflops"] and peak_gflops else None
    return row


def add_ratios(rows: list[dict[str, Any]], key: tuple[str, ...], baseline_backend: str = "torch") -> None:
    """speed/mem/size ratios against the eager row sharing the same `key` fields.

    speed_ratio = eager p50 / backend p50 (> 1 means faster than eager); mem_ratio and
    size_ratio = backend / eager (< 1 means smaller).
    """
    base = {tuple(r.get(k) for k in key): r for r in rows if r.get("backend") == baseline_backend}
    for r in rows:
        b = base.get(tuple(r.get(k) for k in key))
        r["speed_ratio"] = b["p50_ms"] / r["p50_ms"] if b and r.get("p50_ms") else None
        r["mem_ratio"] = (r["peak_mem_bytes"] / b["peak_mem_bytes"]
                          if b and b.get("peak_mem_bytes") and r.get("peak_mem_bytes") is not None else None)
        r["size_ratio"] = (r["size_bytes"] / b["size_bytes"]
                           if b and b.get("size_bytes") and r.get("size_bytes") is not None else None)


def _f(x: Any, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def _mb(x: Any) -> str:
    return "n/a" if x is None else f"{x / 2 ** 20:.1f}"


def bench_table_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The bench result as one table (headers, rows of strings): pipeline rows first."""
    headers = ["workload", "backend", "p50 ms", "p90 ms", "per s", "vs eager", "load s", "peak MB",
               "size MB", "GFLOP/s", "% peak"]
    rows = []
    for r in result.get("pipeline", []):
        rows.append([f"end-to-end ({r.get('frames')} frames)", _label(r), _f(r.get("p50_ms"), ".1f"),
                     _f(r.get("p90_ms"), ".1f"), _f(r.get("fps"), ".1f") + " fps",
                     _f(r.get("speed_ratio"), ".2f") + ("x" if r.get("speed_ratio") else ""),
                     _f(r.get("load_s"), ".2f"), _mb(r.get("peak_mem_bytes")), _mb(r.get("size_bytes")), "", ""])
    for r in result.get("programs", []):
        pf = r.get("peak_fraction")
        rows.append([r["program"], _label(r), _f(r.get("p50_ms"), ".2f"), _f(r.get("p90_ms"), ".2f"),
                     _f(r.get("per_s"), ".1f"), _f(r.get("speed_ratio"), ".2f") + ("x" if r.get("speed_ratio") else ""),
                     _f(r.get("load_s"), ".2f"), _mb(r.get("peak_mem_bytes")), _mb(r.get("size_bytes")),
                     _f(r.get("gflops"), ".2f"), "n/a" if pf is None else f"{100 * pf:.1f}"])
    return headers, rows


def _label(r: dict[str, Any]) -> str:
    p = r.get("precision")
    return f"{r['backend']} {p}" if p else r["backend"]


def bench_table_markdown(result: dict[str, Any]) -> str:
    headers, rows = bench_table_rows(result)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(c or " " for c in r) + " |" for r in rows]
    m = result.get("machine", {})
    lines.append("")
    lines.append(f"Measured on {m.get('cpu', '?')} ({m.get('cores', '?')} cores, {m.get('threads', '?')} threads), "
                 f"{m.get('system', '?')}, torch {m.get('torch', '?')}; matmul peak "
                 f"{_f(m.get('peak_gflops'), '.1f')} GFLOP/s.")
    return "\n".join(lines)
