"""coreml-sim benchmark: per program and precision, the error of coreml-sim (a numpy SIMULATION of
Core ML semantics, not Core ML) against PyTorch eager FP32, and how long it takes. Printed, not
asserted. coreml-sim is a checker, not a runtime: the times say what a verify costs.

  python benchmarks/coreml_sim.py --preset tiny --precisions fp32,fp16,int8-weights,int8
  python benchmarks/coreml_sim.py --bundle BUNDLE [--bundle BUNDLE2]   # + full `verify` time

Programs come from --ckpt RUN or a fresh --preset run (benchmarks/quantize.py's `build`: random
weights where a fresh run zero-initialises); INT8 is calibrated on noisy copies of each
program's example inputs and measured on the example inputs themselves.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path



def _bench_quantize():
    """benchmarks/quantize.py as a module (its `build`, timer and parity helpers)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_quantize", Path(__file__).resolve().parent / "quantize.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _calibration(p, n: int = 8):
    import numpy as np

    rng = np.random.default_rng(0)
    xs = [x.numpy() for x in p.example_inputs]
    return tuple(tuple((x + 0.05 * rng.standard_normal(x.shape) * (x.std() or 1)).astype(x.dtype)
                       if x.dtype.kind == "f" else x for x in xs) for _ in range(n))


def program_rows(args) -> list[dict]:
    import numpy as np
    import torch

    from edgeth.quantize.plan import PrecisionPlan
    from edgeth.targets import get_target
    from edgeth.targets.common import runner_entry
    from edgeth.targets.coreml.sim import make_runner

    bq = _bench_quantize()
    build, median_time, output_parity = bq.build, bq.median_time, bq.output_parity
    torch.set_num_threads(args.threads)
    programs, _ = build(args)
    rows = []
    with tempfile.TemporaryDirectory() as td:
        for prec in args.precisions.split(","):
            for p in programs:
                d = Path(td) / f"{prec}-{p.name}"
                plan = None if prec == "fp32" else PrecisionPlan(prec, (), calibration=_calibration(p))
                art = get_target("coreml").export(p, plan, d)
                t0 = time.perf_counter()
                run = make_runner(d, runner_entry(p, art))
                load_s = time.perf_counter() - t0
                xs = [x.numpy() for x in p.example_inputs]
                got = run(*xs)
                with torch.no_grad():
                    ref = p.module(*p.example_inputs)
                ref = [r.numpy() for r in (ref if isinstance(ref, (tuple, list)) else [ref])]
                kind = p.outputs[0].kind
                rows.append({"program": p.name, "precision": prec, "load_s": load_s,
                             "sim_ms": 1e3 * median_time(lambda: run(*xs), args.repeat),
                             "eager_ms": 1e3 * median_time(lambda: p.module(*p.example_inputs), args.repeat),
                             "max_abs": max(float(np.abs(g.astype(np.float64) - r).max()) for g, r in zip(got, ref)),
                             **output_parity(kind, ref[0], got[0])})
                print(_fmt(rows[-1]), flush=True)
    return rows


def _fmt(r: dict) -> str:
    q = f"psnr {r['psnr_db']:.1f} dB" if "psnr_db" in r else f"cosine {r['cosine']:.6f}"
    return (f"| {r['program']} | {r['precision']} | {r['max_abs']:.2e} | {q} | {r['sim_ms']:.1f} | "
            f"{r['eager_ms']:.2f} | {r['load_s']:.2f} |")


def verify_times(bundles: list[str]) -> None:
    from edgeth.runtime_py.verify import verify_bundle

    for b in bundles:
        t0 = time.perf_counter()
        rep = verify_bundle(b, "coreml-sim")
        print(f"verify {b} on coreml-sim: {'PASSED' if rep.passed else 'FAILED'} {len(rep.checks)} checks "
              f"in {time.perf_counter() - t0:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ifmdm")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--precisions", default="fp32,fp16,int8-weights,int8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bundle", action="append", default=[], help="also time `edgeth verify --backend coreml-sim`")
    args = ap.parse_args()
    print("coreml-sim (numpy simulation of Core ML semantics, not Core ML) vs PyTorch eager FP32")
    print("| program | precision | max abs | quality | coreml-sim ms | eager ms | sim load s |\n|---|---|---|---|---|---|---|")
    program_rows(args)
    verify_times(args.bundle)


if __name__ == "__main__":
    main()
