"""`edgeth build`: a mini build (export -> verify -> bench -> report) of the test suite's small
fixture family (tests/bundle_support.py, registered for the test), reuse on rerun, a tampered
bundle rebuilt, the data step's stamp, and clean errors for unknown models/targets/precisions."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edgeth.cli import cli


@pytest.fixture(scope="module")
def fixture_run(fixture_bundle):
    import bundle_support

    with bundle_support.registered():
        yield fixture_bundle["run"]


@pytest.fixture(scope="module")
def mini_build(fixture_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("build") / "out"
    args = ["build", "--model", "bundlefix", "--ckpt", str(fixture_run), "--targets", "onnx", "--precision", "fp32",
            "--steps", "0", "--bench-iters", "2", "--threads", "1", "--quiet", "--out", str(out)]
    first = CliRunner().invoke(cli, args)
    first.summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else None
    second = CliRunner().invoke(cli, [*args, "--no-bench"])  # a rerun: reuse, re-verify
    return out, first, second


def test_mini_build_verifies_benches_and_reports(mini_build):
    from edgeth.report.check import check_offline

    out, first, _ = mini_build
    assert first.exit_code == 0, first.output
    summary = first.summary["summary"]
    (row,) = [r for r in summary if r["target"] == "onnx"]
    assert row["status"] == "pass" and row["precision"] == "fp32"
    assert row["worst_psnr_db"] >= 60  # the fp32 frames tolerance
    assert row["speed_ratio"] > 0 and row["size_bytes"] > 0
    bench = json.loads((out / "bench.json").read_text())
    assert {r["backend"] for r in bench["pipeline"]} == {"torch", "onnxruntime"}
    assert "onnx" in first.output and "pass" in first.output  # the summary table
    res = check_offline(out / "report.html")
    assert res.ok, res.problems
    assert "Per-frame PSNR" in (out / "report.html").read_text()


def test_rerun_reuses_the_valid_bundle(mini_build):
    out, first, second = mini_build
    assert second.exit_code == 0, second.output
    reused = json.loads((out / "summary.json").read_text())["reused"]
    assert "export fp32" in reused
    assert "reused: export fp32" in second.output


def test_tampered_bundle_is_rebuilt(mini_build, fixture_run):
    from edgeth.build import BuildConfig, _export_one, tree_hash

    out, _, _ = mini_build
    path = out / "bundles" / "fp32"
    victim = next(p for p in (path / "onnx").iterdir() if p.is_file())
    victim.write_bytes(victim.read_bytes() + b"x")
    reused: list[str] = []
    cfg = BuildConfig(model="bundlefix", ckpt=str(fixture_run), targets=("onnx",), precisions=("fp32",), steps=None,
                      threads=1)
    _export_one(fixture_run, tree_hash(fixture_run), path, "fp32", ["onnx"], cfg, reused)
    assert reused == []  # hash mismatch: exported again
    from edgeth.bundle.io import load_bundle

    load_bundle(path)  # and valid again


def test_data_step_reuses_and_redoes(tmp_path):
    from edgeth.build import BuildConfig, _data

    cfg = BuildConfig(clips=2, seconds=1.0, size=32)
    reused: list[str] = []
    data = _data(tmp_path, cfg, reused)
    assert (data / "manifest.json").exists() and reused == []
    _data(tmp_path, cfg, reused)
    assert reused == ["data"]
    (data / "manifest.json").write_text("{}")  # changed: not the corpus the stamp describes
    reused.clear()
    _data(tmp_path, cfg, reused)
    assert reused == [] and json.loads((data / "manifest.json").read_text()) != {}


@pytest.mark.parametrize("args,words", [
    (["--model", "vqtalker2"], ["unknown model", "ifmdm"]),
    (["--targets", "nope"], ["unknown target", "executorch"]),
    (["--precision", "int3"], ["unknown precision", "fp16"]),
])
def test_bad_input_is_one_line_error(args, words, tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "edgeth", "build", "--out", str(tmp_path / "o"), *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error:") and "Traceback" not in r.stderr
    for w in words:
        assert w in r.stderr


def test_a_failing_target_fails_alone(monkeypatch, tmp_path):
    """A joint export that misses parity is retried per target: the passing targets keep their
    bundles (BUNDLES/<prec>-<target>), the failing one is reported with the reason."""
    from edgeth import build
    from edgeth.errors import CheckFailed

    calls = []

    def fake_export_one(run, ckpt_hash, path, prec, targets, cfg, reused):
        calls.append(list(targets))
        if "onnx" in targets:
            raise CheckFailed("exported programs miss FP32 parity: onnx/program/x/y: max_abs 1e-3")
        return path

    monkeypatch.setattr(build, "_export_one", fake_export_one)
    got, fails = build._export(tmp_path / "run", "h", tmp_path, "int8", ["executorch", "onnx"],
                               build.BuildConfig(), [])
    assert calls == [["executorch", "onnx"], ["executorch"], ["onnx"]]
    assert got == {"int8-executorch": tmp_path / "bundles" / "int8-executorch"}
    assert list(fails) == ["onnx int8"] and fails["onnx int8"].startswith("export parity failed: ")


def test_the_demo_sampler_steps_apply_only_to_families_with_a_sampler():
    """`edgeth build --model vqtalker` failed every export with "unknown option 'steps'": the demo's
    default of 10 sampler steps was passed to a family that has no sampler."""
    from edgeth.build import DEMO_SAMPLER_STEPS, BuildConfig, _sampler_steps
    from edgeth.errors import InputError
    from edgeth.models import get_model

    assert _sampler_steps(get_model("ifmdm"), BuildConfig(), False).steps == DEMO_SAMPLER_STEPS
    assert _sampler_steps(get_model("mdcf"), BuildConfig(steps=4), False).steps == 4
    assert _sampler_steps(get_model("vqtalker"), BuildConfig(), False).steps is None
    assert _sampler_steps(get_model("vqtalker"), BuildConfig(steps=None), False).steps is None
    with pytest.raises(InputError, match="no sampler steps option"):
        _sampler_steps(get_model("vqtalker"), BuildConfig(steps=4), False)


def test_calib_clips_reaches_the_quantizer_and_the_stamp(monkeypatch, tmp_path):
    """--calib-clips goes to the quantizer of int8/mixed and into their stamp (a different
    calibration set is a different bundle); unset, nothing changes (older stamps stay valid)."""
    import edgeth.bundle.export as bundle_export
    from edgeth.build import BuildConfig, _export_one

    seen = []
    monkeypatch.setattr(bundle_export, "export_bundle", lambda run, path, **kw: seen.append(kw["quantize"]))
    for clips, prec in ((2, "int8"), (None, "int8"), (2, "fp32")):
        path = tmp_path / f"{prec}-{clips}"
        cfg = BuildConfig(model="ifmdm", ckpt="x", precisions=(prec,), calib_clips=clips)
        _export_one(tmp_path, "hash", path, prec, ["onnx"], cfg, [])
        stamp = json.loads(path.with_name(path.name + ".build.json").read_text())
        assert stamp.get("calib_clips") == (clips if prec != "fp32" else None), stamp
    assert [q.get("calib_clips") for q in seen] == [2, None, 2]
