"""Fuzz every parser edgeth owns with hypothesis and count which outcome each input gave.

    python benchmarks/fuzz.py                    # 10,000 examples per parser
    python benchmarks/fuzz.py --examples 500 --only audio,junit

Targets and strategies are tests/fuzz_support.py (the same ones tests/test_fuzz.py runs a few
hundred of). The bundle parsers fuzz around the tests' small `bundlefix` bundle (exported here
first, ONNX only). Only edgeth's own error type is an allowed failure: any other exception
stops the run with the input that caused it (exit 1).
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from hypothesis import HealthCheck, given, settings  # noqa: E402

import fuzz_support as F  # noqa: E402


def _targets(bundle: Path) -> dict:
    base = json.loads((bundle / "manifest.json").read_text())
    golden = (bundle / "golden" / "denoiser.npz").read_bytes()
    return {
        "manifest": (F.manifest_examples(base), F.manifest_target(bundle)),
        "golden": (F.npz_examples(golden), F.golden_target(bundle)),
        "device-dump": (F.npz_examples(), F.dump_target(bundle)),
        "audio": (F.wav_examples(), F.audio_target()),
        "junit": (F.junit_examples(), F.junit_target()),
        "tokens": (F.token_examples(), F.token_target()),
        "polygraphy": (F.polygraphy_examples(), F.polygraphy_target()),
    }


def fuzz(name: str, strategy, target, examples: int, work: Path) -> collections.Counter:
    counts: collections.Counter = collections.Counter()

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(example):
        counts[target(example, work)] += 1

    run()
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=10_000)
    ap.add_argument("--only", default=None, help="comma-separated targets")
    ap.add_argument("--top", type=int, default=8, help="outcomes listed per target")
    args = ap.parse_args()
    from bundle_support import build_bundle

    with tempfile.TemporaryDirectory(prefix="edgeth-fuzz-") as d:
        root = Path(d)
        bundle = build_bundle(root / "fixture", targets=["onnx"], tar=False)["bundle"]
        targets = _targets(bundle)
        names = args.only.split(",") if args.only else list(targets)
        total = 0
        for name in names:
            work = root / name
            work.mkdir()
            t0 = time.perf_counter()
            counts = fuzz(name, *targets[name], args.examples, work)
            n = sum(counts.values())
            total += n
            errors = n - counts.get("ok", 0)
            print(f"== {name}: {n} inputs in {time.perf_counter() - t0:.0f} s: {counts.get('ok', 0)} parsed, "
                  f"{errors} refused with EdgethError ({len(counts) - ('ok' in counts)} distinct messages), "
                  f"0 other exceptions")
            for what, k in counts.most_common(args.top):
                print(f"  {k:6d}  {what}")
    print(f"\n{total} inputs over {len(names)} parsers; every failure was an EdgethError")
    return 0


if __name__ == "__main__":
    sys.exit(main())
