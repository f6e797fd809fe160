"""The benchmark table the README quotes: `edgeth bench` over every bundle `edgeth build` wrote.

  make demo                                   # or: edgeth build --out demo_out
  python benchmarks/bench.py demo_out --json bench.json --readme README.md
  python benchmarks/bench.py - --from-json demo_out/bench.json --readme README.md   # no re-measuring

Prints one markdown table per bundle (per program and end to end, each backend next to
PyTorch eager FP32 measured in the same run) plus the machine it ran on. Same code as
`edgeth bench` (edgeth.bench.bundle); nothing here is asserted.
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
    ap.add_argument("--from-json", type=Path, default=None, help="format a saved result (bench.json) instead of measuring")
    ap.add_argument("--readme", type=Path, default=None, help="replace README's bench-table block with the result")
    args = ap.parse_args(argv)

    from edgeth.bench import bench_table_markdown
    from edgeth.bench.bundle import bench_bundle
    from edgeth.build import merge_bench

    if args.from_json:
        res = json.loads(args.from_json.read_text())
        return _readme(args.readme, bench_table_markdown(res.get("merged") or res)) if args.readme else 0
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
    if args.readme:
        return _readme(args.readme, bench_table_markdown(merge_bench(parts)))
    return 0


def _readme(readme: Path, table: str) -> int:
    """Swap the text between <!-- bench-table:begin --> and <!-- bench-table:end -->."""
    import re

    text = readme.read_text()
    new, n = re.subn(r"(<!-- bench-table:begin -->\n).*?(<!-- bench-table:end -->)",
                     lambda m: m.group(1) + table + "\n" + m.group(2), text, flags=re.S)
    if n != 1:
        print(f"{readme} has no bench-table markers", file=sys.stderr)
        return 2
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
