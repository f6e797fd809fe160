"""kill -9 during `edgeth export` leaves the previous bundle intact, and two exports into one
--out never mix: one wins, the other reports the lock (tests/crash_support.py; more kills
and `edgeth build` in benchmarks/crash.py)."""
from __future__ import annotations

import subprocess
import time

from bundle_support import make_run
from crash_support import bundle_state, edgeth_cmd, kill_trials, leftovers, rerun_completes, run


def _export(run_dir, out):
    return edgeth_cmd("export", "--ckpt", run_dir, "--model", "bundlefix", "--target", "onnx", "--out", out,
                      "--quiet", fixture=True)


def test_kill9_during_export_keeps_the_previous_bundle(tmp_path):
    run_dir = make_run(tmp_path / "run")
    out = tmp_path / "out" / "bundle"
    cmd = _export(run_dir, out)
    t0 = time.perf_counter()
    first = run(cmd)
    took = time.perf_counter() - t0
    assert first.returncode == 0, first.stderr
    # late moments: the export is past its imports and reference run, inside the write/rename phase
    figures = kill_trials(cmd, out, out.parent, kills=2, window=(0.6 * took, 0.95 * took), seed=1, log=lambda s: None)
    assert figures["kills"] == 2 and figures["bytes_lost"] == 0, figures
    assert figures["survived"] == figures["kills"] + figures["finished"], figures
    rerun = rerun_completes(cmd, out, out.parent)
    assert rerun["rc"] == 0 and rerun["bundle_ok"], rerun
    assert rerun["leftovers"] == [], rerun  # the dead writers' temp folders and lock are gone


def test_two_exports_into_one_out_one_wins(tmp_path):
    run_dir = make_run(tmp_path / "run")
    out = tmp_path / "bundle"
    cmd = _export(run_dir, out)
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    loser = next(err for rc, err in results if rc == 2)
    lines = [ln for ln in loser.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "another edgeth process" in lines[0] and "Traceback" not in loser, loser
    state, why = bundle_state(out)
    assert state is not None, why
    assert leftovers(out) == []
