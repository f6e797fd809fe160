"""Bundle format and `edgeth export/verify/inspect`: round trips, determinism, every error path.

Uses the small `bundlefix` family (tests/bundle_support.py), exported once per session for
every target that can export and run here (conftest `fixture_bundle`).
"""
from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import bundle_support as bs
from bundle_support import assert_clean_error, cli
from edgeth.bundle.io import load_bundle
from edgeth.bundle.manifest import comparable
from edgeth.errors import BundleError, CheckFailed, InputError

TARGETS = bs.runnable_targets()
BACKENDS = bs.runnable_backends()
FAST = sorted(TARGETS, key=lambda t: t != "onnx")[:1]  # the quickest target to export, for single-target tests


@pytest.fixture(autouse=True, scope="module")
def _family():
    with bs.registered():
        yield


def copy_bundle(fixture_bundle, tmp_path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(fixture_bundle["bundle"], dst)
    return dst


def rewrite_manifest(bundle: Path, edit) -> None:
    mf = bundle / "manifest.json"
    d = json.loads(mf.read_text())
    edit(d)
    mf.write_text(json.dumps(d, indent=2, sort_keys=True))


# -- round trips ---------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_matches_golden(fixture_bundle, backend):
    from edgeth.runtime_py.verify import verify_bundle

    rep = verify_bundle(load_bundle(fixture_bundle["bundle"]), backend)
    assert rep.passed, "\n".join(rep.lines())
    names = {c.name for c in rep.checks}
    assert {"quality/denoiser/eps", "quality/renderer/frame", "quality/pipeline/motion", "quality/pipeline/frames"} <= names
    from edgeth.runtime_py.backends import SIMULATORS

    if backend != "torch" and backend not in SIMULATORS:  # gate 1: each artifact against its own host outputs
        assert {"runtime/denoiser/eps", "runtime/renderer/frame"} <= names  # (a simulator has none recorded)
    for c in rep.checks:
        if "max_abs" in c.metrics and c.name.split("/")[1] in ("denoiser", "renderer"):
            assert c.metrics["max_abs"] <= 1e-4
    frames = next(c for c in rep.checks if c.name == "quality/pipeline/frames")
    assert frames.metrics["psnr_db"] >= 60.0
    assert len(frames.detail["curve"]["psnr_db"]) == 16
    if backend == "executorch":  # the .bpte's own golden cases, through ExecuTorch's verifier
        bundled = {c.name: c.metrics for c in rep.checks if c.name.startswith("runtime/bundled/")}
        assert bundled == {"runtime/bundled/denoiser": {"cases": 6, "failed": 0},
                           "runtime/bundled/renderer": {"cases": 8, "failed": 0}}


def test_tar_and_folder_hold_the_same_bundle(fixture_bundle):
    a, b = load_bundle(fixture_bundle["bundle"]), load_bundle(fixture_bundle["tar"])
    assert a.manifest == b.manifest
    np.testing.assert_array_equal(a.pipeline_golden()["frames"], b.pipeline_golden()["frames"])
    calls = b.golden_calls("denoiser")
    assert len(calls) == 6 and calls[0][0][0].shape == (1, 8, 12)


def test_export_twice_gives_identical_manifests(fixture_bundle, tmp_path):
    from edgeth.bundle.export import export_bundle

    image, audio = bs.sample_media()
    first = json.loads((fixture_bundle["bundle"] / "manifest.json").read_text())
    res = export_bundle(fixture_bundle["run"], tmp_path / "again", targets=sorted(first["targets"]), image=image,
                        audio=audio, progress=False)
    differ = sorted(k for k in set(first["files"]) | set(res.manifest["files"])
                    if first["files"].get(k) != res.manifest["files"].get(k))
    assert not differ, f"files that differ between two exports: {differ}"  # byte-identical artifacts and golden
    assert comparable(first) == comparable(res.manifest)
    assert first["created"] != "" and set(first) - set(comparable(first)) == {"created"}
    # a different checkpoint changes the hash
    other = bs.make_run(tmp_path / "run2", seed=1)
    res2 = export_bundle(other, tmp_path / "other", targets=[], image=image, audio=audio, progress=False)
    assert res2.manifest["model"]["checkpoint_sha256"] != first["model"]["checkpoint_sha256"]


def test_export_fails_and_writes_nothing_when_parity_fails(fixture_bundle, tmp_path, monkeypatch):
    if not TARGETS:
        pytest.skip("no export target runs here")
    from edgeth import tolerances
    from edgeth.bundle.export import export_bundle

    monkeypatch.setitem(tolerances.TOLERANCES, "fp32", {k: {"max_abs": -1.0} for k in tolerances.TOLERANCES["fp32"]})
    image, audio = bs.sample_media()
    with pytest.raises(CheckFailed, match="miss FP32 parity"):
        export_bundle(fixture_bundle["run"], tmp_path / "b", targets=FAST, image=image, audio=audio, progress=False)
    assert not (tmp_path / "b").exists()
    assert not list(tmp_path.glob(".b.*")), "a temp folder was left behind"


# -- loading refuses bad bundles -------------------------------------------------------------
def test_newer_format_version_is_refused(fixture_bundle, tmp_path):
    b = copy_bundle(fixture_bundle, tmp_path)
    rewrite_manifest(b, lambda d: d.update(format_version=d["format_version"] + 1))
    with pytest.raises(BundleError, match="newer than this edgeth supports"):
        load_bundle(b)
    assert_clean_error(cli("inspect", str(b)), 2, "newer", "upgrade edgeth")


def test_tampered_manifest_hash(fixture_bundle, tmp_path):
    b = copy_bundle(fixture_bundle, tmp_path)
    rewrite_manifest(b, lambda d: d["files"].update({"golden/denoiser.npz": "0" * 64}))
    assert_clean_error(cli("verify", str(b), "--backend", "torch"), 2, "golden/denoiser.npz", "sha256")


@pytest.mark.parametrize("target", TARGETS or ["(none)"])
def test_corrupted_artifact(fixture_bundle, tmp_path, target):
    if target == "(none)":
        pytest.skip("no export target runs here")
    b = copy_bundle(fixture_bundle, tmp_path)
    m = json.loads((b / "manifest.json").read_text())
    rel = f"{target}/{m['programs'][0]['artifacts'][target]['files'][0]}"
    f = b / rel
    data = bytearray(f.read_bytes())
    f.write_bytes(bytes(data[: len(data) // 2]))  # truncated artifact
    backend = {"onnx": "onnxruntime"}.get(target, target)
    # caught by the hash check ...
    assert_clean_error(cli("verify", str(b), "--backend", backend), 2, rel)
    # ... and, with the hash forged to match, by the runtime loading it
    from edgeth.io_utils import sha256_file

    rewrite_manifest(b, lambda d: d["files"].update({rel: sha256_file(f)}))
    assert_clean_error(cli("verify", str(b), "--backend", backend, "--programs-only"), 2)


def test_truncated_tar(fixture_bundle, tmp_path):
    data = fixture_bundle["tar"].read_bytes()
    for frac in (0.5, 0.05):
        bad = tmp_path / f"cut{frac}.tar"
        bad.write_bytes(data[: int(len(data) * frac)])
        with pytest.raises(BundleError):
            load_bundle(bad)
    assert_clean_error(cli("inspect", str(tmp_path / "cut0.5.tar")), 2, "cut0.5.tar")


def test_not_a_bundle(tmp_path):
    assert_clean_error(cli("inspect", str(tmp_path)), 2, "manifest.json")
    assert_clean_error(cli("inspect", str(tmp_path / "nope")), 2, "does not exist")


def test_schema_errors_are_bundle_errors(fixture_bundle, tmp_path):
    b = copy_bundle(fixture_bundle, tmp_path)
    rewrite_manifest(b, lambda d: d["programs"][0].pop("outputs"))
    with pytest.raises(BundleError, match="lacks 'outputs'"):
        load_bundle(b)
    rewrite_manifest(b, lambda d: d["files"].update({"../escape": "0" * 64}))
    with pytest.raises(BundleError):
        load_bundle(b)


# -- CLI: export, verify, inspect --------------------------------------------------------------
def test_cli_export_inspect_verify(fixture_bundle, tmp_path):
    pytest.importorskip("edgeth.data.video", reason="edgeth.data.video (read_image/read_audio) not landed")
    png, wav = bs.write_media(tmp_path / "media")
    out = tmp_path / "cli_bundle"
    targets = ",".join(FAST)
    args = ["export", "--ckpt", str(fixture_bundle["run"]), "--out", str(out), "--image", str(png), "--audio", str(wav),
            "--quiet", "--tar"] + (["--target", targets] if targets else [])
    r = cli(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "manifest.json").is_file() and out.with_name("cli_bundle.tar").is_file()
    r = cli("inspect", str(out))
    assert r.returncode == 0 and "denoiser" in r.stdout and "x_t:float32[1,8,12]" in r.stdout and "tolerance" in r.stdout
    assert json.loads(cli("inspect", str(out), "--json").stdout)["format_version"] == 1
    junit = tmp_path / "v.xml"
    r = cli("verify", str(out.with_name("cli_bundle.tar")), "--json", "--junit", str(junit))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    rep = json.loads(r.stdout)
    assert rep["passed"] and rep["reports"][0]["backend"] == ({"onnx": "onnxruntime"}.get(targets, targets) or "torch")
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and root.get("failures") == "0"
    assert len(root.findall(".//testcase")) == len(rep["reports"][0]["checks"]) >= 4


def test_cli_export_refuses_bad_options(fixture_bundle, tmp_path):
    base = ["export", "--ckpt", str(fixture_bundle["run"]), "--out", str(tmp_path / "b")]
    assert_clean_error(cli(*base, "--precision", "int4"), 2, "precision", "int4")
    assert_clean_error(cli(*base, "--target", "nosuch"), 2, "unknown target")
    assert_clean_error(cli("export", "--ckpt", str(tmp_path / "missing"), "--out", str(tmp_path / "b")), 2, "does not exist")
    assert not (tmp_path / "b").exists()
    precious = tmp_path / "docs"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    assert_clean_error(cli("export", "--ckpt", str(fixture_bundle["run"]), "--out", str(precious)), 2, "not a bundle")
    assert (precious / "notes.txt").read_text() == "keep me"


def test_cli_unavailable_backend_lists_available(fixture_bundle):
    missing = next(b for b in ("coreml", "tensorrt", "executorch", "onnxruntime") if b not in BACKENDS)
    r = cli("verify", str(fixture_bundle["bundle"]), "--backend", missing)
    assert_clean_error(r, 2, "available backends", "torch")


# -- device outputs (the QA workflow) ------------------------------------------------------------
def _dump(bundle_dir: Path, out: Path, layout: str) -> None:
    """What an app would dump: every golden call run on the torch backend."""
    from edgeth.runtime_py.backends import program_call
    from edgeth.runtime_py.pipeline import Pipeline

    b = load_bundle(bundle_dir)
    call = program_call(b, "torch")
    out.mkdir(parents=True)
    for name in b.program_names:
        _, outs = b.specs(name)
        got = [call(name, ins) for ins, _ in b.golden_calls(name)]
        if layout == "npz":
            np.savez(out / f"{name}.npz", **{f"out_{s.name}": np.stack([g[j] for g in got]) for j, s in enumerate(outs)})
        else:
            for i, g in enumerate(got):
                (out / name / str(i)).mkdir(parents=True)
                for j, s in enumerate(outs):
                    np.save(out / name / str(i) / f"{s.name}.npy", g[j])
    res = Pipeline(b, "torch").run_golden()
    np.savez(out / "pipeline.npz", frames=res.frames, motion=res.extras["motion"])


@pytest.mark.parametrize("layout", ["npz", "npy"])
def test_verify_outputs_pass_and_fail(fixture_bundle, tmp_path, layout):
    dumps = tmp_path / "dumps"
    _dump(fixture_bundle["bundle"], dumps, layout)
    r = cli("verify", str(fixture_bundle["bundle"]), "--outputs", str(dumps))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pipeline/frames" in r.stdout
    # perturb one output of one call -> exit 1, the output is named
    if layout == "npz":
        z = dict(np.load(dumps / "renderer.npz"))
        z["out_frame"][3] += 1e-2
        np.savez(dumps / "renderer.npz", **z)
    else:
        f = dumps / "renderer" / "3" / "frame.npy"
        np.save(f, np.load(f) + 1e-2)
    r = cli("verify", str(fixture_bundle["bundle"]), "--outputs", str(dumps), "--junit", str(tmp_path / "j.xml"))
    assert_clean_error(r, 1, "renderer/frame")
    assert "call 3" in r.stdout
    fails = ET.parse(tmp_path / "j.xml").getroot().findall(".//failure")
    assert len(fails) == 1 and "max_abs" in fails[0].get("message")


def test_verify_outputs_missing_and_wrong_shape(fixture_bundle, tmp_path):
    dumps = tmp_path / "dumps"
    _dump(fixture_bundle["bundle"], dumps, "npy")
    shutil.rmtree(dumps / "denoiser" / "5")
    r = cli("verify", str(fixture_bundle["bundle"]), "--outputs", str(dumps))
    assert r.returncode == 1 and "denoiser/5/eps.npy" in r.stdout, r.stdout
    np.save(dumps / "renderer" / "0" / "frame.npy", np.zeros((1, 3, 16, 16), np.float32))
    assert_clean_error(cli("verify", str(fixture_bundle["bundle"]), "--outputs", str(dumps)), 2, "frame", "shape")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_clean_error(cli("verify", str(fixture_bundle["bundle"]), "--outputs", str(empty)), 2, "no outputs")


def test_wrong_input_shape_is_input_error(fixture_bundle):
    from edgeth.runtime_py.backends import program_call

    for backend in BACKENDS:
        call = program_call(load_bundle(fixture_bundle["bundle"]), backend)
        with pytest.raises(InputError, match=r"input 'x_t': expected shape .*given \(1, 9, 12\)"):
            call("denoiser", [np.zeros((1, 9, 12), np.float32), np.zeros((1, 1), np.float32),
                              np.zeros((1, 8, 16), np.float32)])


def test_measured_times_live_only_in_created():
    from edgeth.bundle.records import split_volatile

    rec = {"int8": {"seconds": 12.3, "calibration": {"clips": 4}, "mixed": {"budget": {"psnr": 35}, "timing": {"backend_s": 1.0}}}}
    stable, moved = split_volatile(rec)
    assert stable == {"int8": {"calibration": {"clips": 4}, "mixed": {"budget": {"psnr": 35}}}}
    assert moved == {"int8.seconds": 12.3, "int8.mixed.timing": {"backend_s": 1.0}}


def test_reference_copy_takes_a_relative_run_folder(tmp_path, monkeypatch):
    """`edgeth build --out demo_out` hands export a relative RUN/ (demo_out/run); the default
    reference_files returns run_dir / name, which was joined to run_dir again
    (demo_out/run/demo_out/run/ifmdm.json: `make demo` died with an internal error)."""
    import types

    from safetensors.numpy import save_file

    from edgeth.bundle.reference import copy_reference

    run = tmp_path / "out" / "run"
    run.mkdir(parents=True)
    save_file({"w": np.ones(3, np.float32)}, str(run / "m.safetensors"))
    (run / "fam.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    rels, sha = copy_reference(types.SimpleNamespace(), Path("out/run"), tmp_path / "bundle" / "reference")
    assert rels == ["reference/fam.json", "reference/m.safetensors"] and len(sha) == 64
    assert (tmp_path / "bundle" / "reference" / "m.safetensors").is_file()
