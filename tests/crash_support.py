"""kill -9 harness: SIGKILL `edgeth export` / `edgeth build` at random moments, check what is left.

The contract under test (edgeth.io_utils): an output folder always holds either the previous
complete version or the new complete one, whatever moment the writer dies at; temp entries a
dead writer leaves beside it (`.<name>.<pid>.*.tmp`) never block or confuse the next run,
which removes them; and the rerun completes.

`edgeth_cmd(...)` runs the real CLI in a subprocess. With `fixture=True` it first registers
the tests' `bundlefix` family (tests/bundle_support.py, a small real model that exports in
seconds); otherwise the run must name a registered family (e.g. an IF-MDM RUN/).
Used by tests/test_crash_safety.py (a few kills) and benchmarks/crash.py (20+ kills).
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent
_FIXTURE_MAIN = ("import sys; sys.path.insert(0, {tests!r}); import bundle_support; from edgeth.cli import main\n"
                 "with bundle_support.registered(): main(sys.argv[1:])")


def edgeth_cmd(*args: str, fixture: bool = False) -> list[str]:
    if fixture:
        return [sys.executable, "-c", _FIXTURE_MAIN.format(tests=str(TESTS)), *map(str, args)]
    return [sys.executable, "-m", "edgeth", *map(str, args)]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("EDGETH_DEBUG", None)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run(cmd: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=timeout)


def bundle_state(path: Path) -> tuple[dict[str, str] | None, str]:
    """({file: sha256} when `path` is a complete bundle whose hashes verify, else None; why not)."""
    from edgeth.bundle.io import load_bundle
    from edgeth.errors import EdgethError

    try:
        b = load_bundle(path)
    except EdgethError as e:
        return None, e.message()
    return dict(b.manifest["files"]), ""


def leftovers(*paths: Path) -> list[str]:
    """Temp entries and locks beside each path (hidden names starting with `.<name>.`)."""
    return sorted({p.name for out in paths for p in out.parent.glob(f".{out.name}.*")})


def kill_trials(cmd: list[str], bundle: Path, out: Path, kills: int, window: tuple[float, float],
                seed: int = 0, log=print, prepare=None) -> dict[str, int]:
    """SIGKILL `cmd` `kills` times at uniform random moments in `window` seconds after start.

    `bundle` is the bundle `cmd` (re)writes (for `edgeth build`, one under its --out); it must
    be complete before the first trial. After every kill it must still verify and equal the
    previous version, or (when the writer got past its rename) verify as the new version.
    `prepare()` runs before each trial (e.g. drops `edgeth build`'s stamp so it re-exports).
    A trial whose command ends before its kill moment does not count as a kill, and moves the
    window to the same fractions of that run's time: trials go on until `kills` kills have
    landed (at most 3 x kills trials, then it stops short and says so).
    Returns the figures: kills, survived (kills and finished runs after which the bundle was
    whole), finished (the command ended before its kill), bytes_lost."""
    rng = random.Random(seed)
    prev, why = bundle_state(bundle)
    assert prev is not None, f"no complete bundle to protect at {bundle}: {why}"
    sizes = {rel: (bundle / rel).stat().st_size for rel in prev}
    figures = {"kills": 0, "survived": 0, "finished": 0, "bytes_lost": 0, "max_leftovers": 0}
    trial = 0
    while figures["kills"] < kills and trial < 3 * kills:
        trial += 1
        i = figures["kills"]
        at = rng.uniform(*window)
        if prepare is not None:
            prepare()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
                             start_new_session=True)
        t0 = time.perf_counter()
        try:
            p.wait(timeout=at)
            figures["finished"] += 1
            # the command ran faster than the window assumed (a loaded machine timed the first run
            # slow): move the window to the same fractions of this run's time
            took = time.perf_counter() - t0
            window = (window[0] * took / window[1], took * 0.95)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            figures["kills"] += 1
        now, why = bundle_state(bundle)
        left = leftovers(out, bundle)
        figures["max_leftovers"] = max(figures["max_leftovers"], len(left))
        if now is None:
            figures["bytes_lost"] += sum(sizes.values())
            log(f"trial {trial} (kill {i + 1}/{kills}) at {at:.2f}s: BUNDLE DAMAGED ({why})")
            continue
        if now != prev:  # the writer renamed a complete new version into place before dying
            lost = 0
        else:
            lost = sum(sizes[rel] for rel in prev if not (bundle / rel).is_file())
        figures["bytes_lost"] += lost
        figures["survived"] += lost == 0
        log(f"trial {trial} (kill {i + 1}/{kills}) at {at:.2f}s: {'finished first' if p.returncode == 0 else 'killed'}, "
            f"bundle intact ({'new' if now != prev else 'previous'} version), leftovers: {left or 'none'}")
        prev = now
        sizes = {rel: (bundle / rel).stat().st_size for rel in prev}
    if figures["kills"] < kills:
        log(f"stopped short: {figures['kills']} kills in {trial} trials (the rest finished before their moment)")
    return figures


def rerun_completes(cmd: list[str], bundle: Path, out: Path, timeout: float = 600) -> dict[str, object]:
    """The next run after the kills: exit 0, a bundle that verifies, no dead writer's temp left."""
    t0 = time.perf_counter()
    r = run(cmd, timeout)
    state, why = bundle_state(bundle)
    left = leftovers(out, bundle)
    return {"rc": r.returncode, "stderr": r.stderr[-2000:], "bundle_ok": state is not None, "why": why,
            "leftovers": left, "seconds": round(time.perf_counter() - t0, 1)}
