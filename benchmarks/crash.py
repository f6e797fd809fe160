"""kill -9 `edgeth export` and `edgeth build` at random moments; print what survived.

    python benchmarks/crash.py                  # 12 export + 10 build kills on a real IF-MDM tiny RUN/
    python benchmarks/crash.py --fixture        # the tests' small `bundlefix` family (faster)

Each trial starts the command over an output that already holds a complete bundle, sends
SIGKILL to its whole process group at a uniformly random moment of its measured run time,
then checks that the bundle still verifies (every file's sha256) and counts the temp
entries left beside it. After the trials a rerun must exit 0, leave a verifying bundle and
no dead writer's temp folder or lock. The harness is tests/crash_support.py.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import crash_support as cs  # noqa: E402


def _make_run(root: Path, fixture: bool) -> tuple[Path, str]:
    if fixture:
        from bundle_support import FAMILY, make_run

        return make_run(root / "run"), FAMILY
    from reliability_support import ifmdm_run

    return ifmdm_run(root / "run"), "ifmdm"


def _campaign(name: str, cmd: list[str], bundle: Path, out: Path, kills: int, seed: int, prepare=None) -> dict:
    for _ in range(2):  # the second run is timed: what each trial repeats (build reuses its data/run)
        if prepare is not None:
            prepare()
        t0 = time.perf_counter()
        first = cs.run(cmd)
        took = time.perf_counter() - t0
        if first.returncode != 0:
            raise SystemExit(f"{name}: the first run failed:\n{first.stderr[-3000:]}")
    print(f"== {name}: a run takes {took:.1f} s; {kills} kills at random moments in [0.1, 1.0] x that")
    figures = cs.kill_trials(cmd, bundle, out, kills, (0.1 * took, took), seed=seed,
                             log=lambda s: print("  " + s, flush=True), prepare=prepare)
    if prepare is not None:
        prepare()
    rerun = cs.rerun_completes(cmd, bundle, out)
    print(f"  rerun: exit {rerun['rc']}, bundle {'verifies' if rerun['bundle_ok'] else 'BROKEN: ' + rerun['why']}, "
          f"leftovers {rerun['leftovers'] or 'none'} ({rerun['seconds']} s)")
    return {**figures, "rerun_ok": rerun["rc"] == 0 and rerun["bundle_ok"] and not rerun["leftovers"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixture", action="store_true", help="use the tests' bundlefix family instead of IF-MDM tiny")
    ap.add_argument("--export-kills", type=int, default=12)
    ap.add_argument("--build-kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgeth-crash-") as d:
        root = Path(d)
        run_dir, family = _make_run(root, args.fixture)
        common = ["--model", family, "--quiet"]
        out = root / "export" / "bundle"
        export = cs.edgeth_cmd("export", "--ckpt", run_dir, "--target", "onnx", "--out", out, *common,
                               fixture=args.fixture)
        bout = root / "build"
        build = cs.edgeth_cmd("build", "--ckpt", run_dir, "--targets", "onnx", "--precision", "fp32", "--no-bench",
                              "--out", bout, *common, fixture=args.fixture)
        results = {"export": _campaign("edgeth export", export, out, out, args.export_kills, args.seed)}
        if args.build_kills:
            stamp = bout / "bundles" / "fp32.build.json"  # without it, build re-exports (and replaces) the bundle
            results["build"] = _campaign("edgeth build", build, bout / "bundles" / "fp32", bout, args.build_kills,
                                         args.seed + 1, prepare=lambda: stamp.unlink(missing_ok=True))
    total = {k: sum(r[k] for r in results.values()) for k in ("kills", "survived", "finished", "bytes_lost")}
    ok = total["bytes_lost"] == 0 and total["survived"] == total["kills"] + total["finished"] \
        and all(r["rerun_ok"] for r in results.values())
    print(f"\nkills: {total['kills']} (plus {total['finished']} runs that finished before their kill moment); "
          f"survived: {total['survived']}; bytes lost: {total['bytes_lost']}; "
          f"reruns completed cleanly: {sum(r['rerun_ok'] for r in results.values())}/{len(results)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
