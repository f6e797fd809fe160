"""The benchmark table the README quotes: `edgeth bench` over every bundle `edgeth build` wrote.

  make demo                                   # or: edgeth build --out demo_out
  python benchmarks/bench.py demo_out --json bench.json

Prints one markdown table per bundle (per program and end to end, each backend next to
PyTorch eager FP32 measured in the same run) plus the machine it ran on. Same code as
`edgeth bench` (edgeth.bench_bundle); nothing here is asserted.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path, help="a bundle, or an `edgeth build` output folder (its bundles/*)")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None, help="write every result here")
    args = ap.parse_args(argv)

    from edgeth.bench import bench_table_markdown
    from edgeth.bench_bundle import bench_bundle
    from edgeth.build import merge_bench

    root = args.root
    bundles = [root] if (root / "manifest.json").exists() else sorted(p.parent for p in root.glob("bundles/*/manifest.json"))
    if not bundles:
        print(f"no bundle under {root}: run `edgeth build --out {root}` first", file=sys.stderr)
        return 2
    parts, peak = [], None
    for b in bundles:
        r = bench_bundle(b, iters=args.iters, frames=args.frames, threads=args.threads, peak_gflops=peak)
        peak = r["machine"]["peak_gflops"]
        parts.append(r)
        print(f"\n### {b.name}\n\n{bench_table_markdown(r)}")
    if args.json:
        args.json.write_text(json.dumps({"bundles": parts, "merged": merge_bench(parts)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
