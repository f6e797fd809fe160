"""Benchmark core (percentiles, memory, ratios, matmul peak) and `edgeth bench` on a bundle."""
from __future__ import annotations

import json
import mmap
import time
from pathlib import Path

import numpy as np
import pytest

from edgeth.bench import core as B


def test_percentiles_and_summary():
    s = [0.001 * i for i in range(1, 11)]  # 1..10 ms
    out = B.summarize(s)
    assert out["p50_ms"] == pytest.approx(5.5)
    assert out["p90_ms"] == pytest.approx(9.1)
    assert out["calls"] == 10
    assert out["per_s"] == pytest.approx(1000 / 5.5)
    with pytest.raises(ValueError):
        B.percentile([], 50)


def test_time_calls_stops_at_the_time_cap():
    calls = []
    samples = B.time_calls(lambda: (calls.append(1), time.sleep(0.02)), warmup=1, iters=1000, max_seconds=0.1)
    assert 3 <= len(samples) < 20
    assert len(calls) == len(samples) + 1
    assert min(samples) >= 0.019


def _touch_fresh_pages(nbytes: int) -> mmap.mmap:
    """nbytes of new, touched, private memory. An anonymous mapping, not np.ones: an allocator may
    hand back freed pages that are still resident, and then 64 MB of np.ones adds nothing (seen
    in a make test worker: an increase of 4 KB)."""
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE)
    view = np.frombuffer(buf, np.uint8)
    view[:] = 1
    del view
    return buf


@pytest.mark.skipif(not hasattr(mmap, "MADV_DONTNEED") or not Path("/proc/self/statm").exists(), reason="Linux only")
def test_peak_memory_is_not_fooled_by_file_pages_the_kernel_drops(tmp_path):
    """A mapped library's pages leave RSS when the kernel reclaims them (a loaded machine): an
    allocation made meanwhile must still count in full."""
    lib = tmp_path / "lib.bin"
    lib.write_bytes(b"\1" * (64 * 2 ** 20))
    with open(lib, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        assert sum(mm[i] for i in range(0, len(mm), 4096)) == len(mm) // 4096  # resident now
        with B.PeakMemory() as m:
            mm.madvise(mmap.MADV_DONTNEED)  # what reclaim does to those pages
            _touch_fresh_pages(64 * 2 ** 20).close()
    assert m.increase >= 48 * 2 ** 20


def test_peak_memory_sees_native_allocations():
    with B.PeakMemory() as m:
        buf = _touch_fresh_pages(64 * 2 ** 20)
        time.sleep(0.02)
    buf.close()
    assert m.increase >= 48 * 2 ** 20
    with B.PeakMemory() as small:
        time.sleep(0.01)
    assert small.increase < 16 * 2 ** 20


def test_measure_without_memory_skips_the_collection(monkeypatch):
    import gc

    calls = []
    monkeypatch.setattr(gc, "collect", lambda *a: calls.append(a) or 0)
    row = B.measure("p", lambda: (lambda: None), iters=2, max_seconds=0.1, memory=False)
    assert row["peak_mem_bytes"] is None and row["p50_ms"] >= 0 and not calls
    row = B.measure("p", lambda: (lambda: None), iters=2, max_seconds=0.1)
    assert isinstance(row["peak_mem_bytes"], int) and calls  # the default measures memory, after a collection


def test_ratios_are_against_eager():
    rows = [{"program": "p", "backend": "torch", "p50_ms": 10.0, "peak_mem_bytes": 100, "size_bytes": 400},
            {"program": "p", "backend": "executorch", "p50_ms": 4.0, "peak_mem_bytes": 50, "size_bytes": 100},
            {"program": "q", "backend": "executorch", "p50_ms": 4.0, "peak_mem_bytes": 50, "size_bytes": 100}]
    B.add_ratios(rows, ("program",))
    assert rows[0]["speed_ratio"] == 1.0
    assert rows[1]["speed_ratio"] == pytest.approx(2.5)
    assert rows[1]["mem_ratio"] == pytest.approx(0.5) and rows[1]["size_ratio"] == pytest.approx(0.25)
    assert rows[2]["speed_ratio"] is None  # no eager row for q
    row = B.add_flops({"p50_ms": 2.0}, 4_000_000, 10.0)
    assert row["gflops"] == pytest.approx(2.0) and row["peak_fraction"] == pytest.approx(0.2)


def test_matmul_peak_is_plausible():
    g = B.matmul_peak_gflops(n=256, reps=3, threads=1)
    assert 0.1 < g < 10_000


@pytest.fixture(scope="module")
def bench_result(fixture_bundle):
    import bundle_support

    from edgeth.bench.bundle import bench_bundle

    with bundle_support.registered():
        return bench_bundle(fixture_bundle["bundle"], iters=4, pipeline_iters=2, max_seconds=1.0, threads=1,
                            progress=False)


def test_bench_bundle_measures_every_runnable_backend(bench_result, fixture_bundle):
    import bundle_support

    r = json.loads(json.dumps(bench_result))  # JSON-able for --json tracking
    want = set(bundle_support.runnable_backends())
    assert {row["backend"] for row in r["pipeline"]} == want
    programs = {row["program"] for row in r["programs"]}
    assert programs == {"denoiser", "renderer"}
    eager = {row["program"]: row for row in r["programs"] if row["backend"] == "torch"}
    for row in r["programs"]:
        assert row["p50_ms"] > 0 and row["p90_ms"] >= row["p50_ms"] and row["load_s"] >= 0
        assert row["size_bytes"] > 0
        assert row["speed_ratio"] == pytest.approx(eager[row["program"]]["p50_ms"] / row["p50_ms"])
    for row in r["pipeline"]:
        assert row["frames"] == 16 and row["fps"] == pytest.approx(16e3 / row["p50_ms"])
        st = row["stream"]  # one streamed run per backend (edgeth.bench.stream)
        assert st["frames"] == 16 and st["playback_delay_ms"] >= st["first_frame_ms"] >= 8 / 25 * 1e3
    assert r["machine"]["peak_gflops"] > 0
    assert "coreml" in r["skipped"] or "coreml" in want


def test_bench_table_has_a_row_per_measurement(bench_result):
    md = B.bench_table_markdown(bench_result)
    lines = [x for x in md.splitlines() if x.startswith("| ") and "workload" not in x]
    assert len(lines) == len(bench_result["programs"]) + len(bench_result["pipeline"])
    assert "matmul peak" in md


def test_bench_cli_json(fixture_bundle, tmp_path):
    import bundle_support
    from click.testing import CliRunner

    from edgeth.cli import cli

    with bundle_support.registered():
        r = CliRunner().invoke(cli, ["bench", str(fixture_bundle["bundle"]), "--backend", "onnxruntime", "--iters",
                                     "3", "--frames", "8", "--threads", "1", "--json", "-o", str(tmp_path / "b.json")])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "b.json").read_text())
    assert {row["backend"] for row in res["pipeline"]} == {"torch", "onnxruntime"}
    assert all(row["frames"] == 8 for row in res["pipeline"])
    bad = CliRunner().invoke(cli, ["bench", str(fixture_bundle["bundle"]), "--backend", "nope"])
    assert bad.exit_code != 0


def test_et_profile_feeds_golden_inputs_in_the_programs_order(tmp_path):
    """benchmarks/et_profile.py fed VQTalker's token_generator its golden arrays in the file's key
    order, so an int token input got a float array and ExecuTorch refused it (error 0x12)."""
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "et_profile", Path(__file__).resolve().parent.parent / "benchmarks" / "et_profile.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (tmp_path / "executorch").mkdir()
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"programs": [{"name": "gen", "inputs": [{"name": "speech"}, {"name": "f_g"}, {"name": "tokens"}]}]}))
    files = ["in_f_g", "in_tokens", "in_speech", "out_logits"]
    assert mod._input_keys(tmp_path / "executorch" / "gen.pte", files) == ["in_speech", "in_f_g", "in_tokens"]
    assert mod._input_keys(tmp_path / "elsewhere.pte", files) == ["in_f_g", "in_tokens", "in_speech"]
