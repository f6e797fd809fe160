"""TensorRT target (issue 14): lint, Polygraphy golden data + commands, engine provenance, build script.

Everything here runs without TensorRT except the last test (engine build + run + parity), which
is skipped with the reason where `tensorrt` does not import or no GPU exists.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeth.targets.tensorrt import device
from edgeth.targets.tensorrt.lint import lint_model


def _polygraphy(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """NVIDIA's `polygraphy` CLI (the console script's own entry point) in a subprocess."""
    code = "import sys; from polygraphy.tools import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, "run", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


# -- lint on crafted graphs ------------------------------------------------------------------
def _model(nodes, inputs, outputs, inits=(), opset=18):
    from onnx import helper

    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _rules(findings, severity="error") -> set[tuple[str, str]]:
    return {(f.rule, f.node) for f in findings if f.severity == severity}


def test_lint_5d_gridsample_names_node_and_module():
    from onnx import TensorProto, helper

    node = helper.make_node("GridSample", ["x", "grid"], ["y"], name="gs")
    node.metadata_props.add(key="pkg.torch.onnx.name_scopes", value="['', 'warp3d', 'grid_sampler']")
    m = _model([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4, 4]),
                        helper.make_tensor_value_info("grid", TensorProto.FLOAT, [1, 4, 4, 4, 3])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    found = [f for f in lint_model(m) if f.rule == "gridsample-5d"]
    assert [(f.severity, f.node, f.module) for f in found] == [("error", "gs", "warp3d")]


def test_lint_conv3d_and_unsupported_ops():
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.zeros((2, 2, 1, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv3d"),
             helper.make_node("Unique", ["c"], ["u"], name="uniq"),
             helper.make_node("FusedGemm", ["u"], ["y"], name="ms", domain="com.microsoft")]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 4, 4])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    found = lint_model(m)
    assert _rules(found) == {("op-unsupported", "uniq"), ("op-unsupported", "ms")}
    assert ("conv3d", "conv3d") in _rules(found, "warning")


def test_lint_asymmetric_qdq_and_wrong_weight_axis():
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
             numpy_helper.from_array(np.array(128, np.uint8), "zp_u8"),
             numpy_helper.from_array(np.ones((4, 3, 3, 3), np.int8), "w_q"),
             numpy_helper.from_array(np.full(3, 0.1, np.float32), "w_s"),  # per-channel on axis 1: wrong for Conv
             numpy_helper.from_array(np.zeros(3, np.int8), "w_zp")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zp_u8"], ["xq"], name="q"),
             helper.make_node("DequantizeLinear", ["xq", "s", "zp_u8"], ["xd"], name="dq"),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_zp"], ["w"], name="dq_w", axis=1),
             helper.make_node("Conv", ["xd", "w"], ["y"], name="conv")]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    errors = _rules(lint_model(m))
    assert {("qdq-type", "q"), ("qdq-zero-point", "q"), ("qdq-type", "dq"), ("qdq-zero-point", "dq"),
            ("qdq-axis", "dq_w")} <= errors
    assert not any(node == "conv" for _, node in errors)


def test_lint_missing_profile_and_int64_index_math():
    from onnx import TensorProto, helper, numpy_helper

    one = numpy_helper.from_array(np.array(1, np.int64), "one")
    nodes = [helper.make_node("Add", ["idx", "one"], ["idx1"], name="idx_add"),
             helper.make_node("Gather", ["table", "idx1"], ["y"], name="gather")]
    m = _model(nodes, [helper.make_tensor_value_info("table", TensorProto.FLOAT, [10, 4]),
                       helper.make_tensor_value_info("idx", TensorProto.INT64, ["T"])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["T", 4])], [one])
    assert ("profile", "idx") in _rules(lint_model(m, "10", recipe=None))
    recipe = {"inputs": [{"name": "idx", "min": [1], "opt": [8], "max": [32]}]}
    assert not [f for f in lint_model(m, "10", recipe) if f.rule == "profile"]
    bad = {"inputs": [{"name": "idx", "min": [8], "opt": [1], "max": [32]}]}
    assert ("profile", "idx") in _rules(lint_model(m, "10", bad))
    old = _rules(lint_model(m, "8.6", recipe), "warning")
    assert {("int64", "idx_add"), ("int64", "idx")} <= old  # TensorRT 8.6 narrows INT64 to INT32
    assert not [f for f in lint_model(m, "10.x", recipe) if f.rule == "int64"]


def test_lint_version_table_and_unknown_version():
    from edgeth.errors import InputError
    from edgeth.targets.tensorrt.lint import op_tables, resolve_version

    assert resolve_version("10.x") == resolve_version("10.3") == "10.1" and resolve_version("8.6") == "8.6"
    assert op_tables()["source"]["path"] == "docs/operators.md"
    with pytest.raises(InputError, match="no TensorRT operator table"):
        resolve_version("7.1")


def _registered_programs():
    """The fixture programs + every registered family's untrained tiny programs."""
    from edgeth.models import get_model, model_names
    from fixture_programs import fixture_programs

    out = [(f"fixture/{p.name}", p) for p in fixture_programs()]
    for name in model_names():
        fam = get_model(name)
        if hasattr(fam, "fresh"):
            out += [(f"{name}/{p.name}", p) for p in fam.programs(fam.fresh("tiny"))]
    return out


def test_lint_clean_and_polygraphy_onnxrt_on_every_registered_family(tmp_path):
    """Every program of every family exports for TensorRT with no lint error (10.x and 8.6), and the
    recipe's own `polygraphy run` line, with --onnxrt for --trt, passes on its golden call."""
    import torch

    from edgeth.targets import Artifact, get_target
    from edgeth.targets.onnx.exporter import onnx_bytes
    from edgeth.targets.tensorrt.polygraphy_data import onnxrt_args

    import onnx

    tgt = get_target("tensorrt")
    for label, p in _registered_programs():
        for version in ("10.x", "8.6"):
            errors = [f.line() for f in lint_model(onnx.load_from_string(onnx_bytes(p)), version) if f.severity == "error"]
            assert not errors, f"{label} (TensorRT {version}): {errors}"
        out = tmp_path / label.replace("/", "_")
        out.mkdir()
        art: Artifact = tgt.export(p, None, out)
        with torch.no_grad():
            ref = p.module(*p.example_inputs)
        ref = [ref] if isinstance(ref, torch.Tensor) else list(ref)
        ins = [t.detach().numpy() for t in p.example_inputs]
        tgt.attach_golden(out, art, [ins], [[r.detach().numpy() for r in ref]])
        res = _polygraphy(onnxrt_args(json.loads((out / f"{p.name}.trt.json").read_text())), out)
        assert res.returncode == 0, f"{label}: {res.stdout[-2000:]}{res.stderr[-2000:]}"


# -- Polygraphy data files + commands on the fixture bundle ---------------------------------------
def _trt_dir(fixture_bundle) -> Path:
    d = Path(fixture_bundle["bundle"]) / "tensorrt"
    if not d.is_dir():
        pytest.skip("the fixture bundle has no tensorrt target here")
    return d


def test_polygraphy_files_round_trip(fixture_bundle):
    """Polygraphy's own loaders read back exactly the golden vectors of golden/<program>.npz."""
    from polygraphy.comparator import RunResults
    from polygraphy.json import load_json

    from edgeth.bundle.golden import load_npz

    d = _trt_dir(fixture_bundle)
    for recipe in sorted(d.glob("*.trt.json")):
        prog = recipe.name.removesuffix(".trt.json")
        gold = load_npz(Path(fixture_bundle["bundle"]) / "golden" / f"{prog}.npz")
        feeds = load_json(str(d / f"{prog}.inputs.json"))
        (runner, iters), = RunResults.load(str(d / f"{prog}.outputs.json")).items()
        assert runner == "pytorch-fp32" and len(feeds) == len(iters) == gold[next(iter(gold))].shape[0]
        for i, (feed, it) in enumerate(zip(feeds, iters)):
            for k, v in gold.items():
                got = feed[k[3:]] if k.startswith("in_") else it[k[4:]]
                np.testing.assert_array_equal(got, v[i])
        line = json.loads(recipe.read_text())["polygraphy"]
        assert line.startswith(f"polygraphy run {prog}.onnx --trt ") and "--atol" in line and "--rtol" in line


def test_polygraphy_onnxrt_passes_and_tampered_outputs_fail(fixture_bundle, tmp_path):
    from polygraphy.comparator import RunResults

    from edgeth.targets.tensorrt.polygraphy_data import onnxrt_args

    d = shutil.copytree(_trt_dir(fixture_bundle), tmp_path / "trt")
    recipe = json.loads((d / "renderer.trt.json").read_text())
    ok = _polygraphy(onnxrt_args(recipe), d)
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    results = RunResults.load(str(d / "renderer.outputs.json"))
    for it in results["pytorch-fp32"]:
        it["frame"] = it["frame"] + np.float32(0.01)  # 100x the FP32 max_abs bound
    results.save(str(d / "renderer.outputs.json"))
    bad = _polygraphy(onnxrt_args(recipe), d)
    assert bad.returncode == 1 and "FAILED" in bad.stdout + bad.stderr


def test_tolerance_mapping_is_implied_by_the_table():
    """mean|e| <= the derived atol whenever the output meets the table's PSNR/SQNR (a necessary check)."""
    from edgeth.runtime_py.parity import psnr_db, sqnr_db
    from edgeth.targets.tensorrt.polygraphy_data import output_tolerance

    rng = np.random.default_rng(0)
    ref = rng.random((1, 3, 16, 16)).astype(np.float32)
    t = output_tolerance({"psnr_db": 30.0}, [ref])
    assert t["stat"] == "mean"
    got = ref + rng.normal(0, 0.02, ref.shape).astype(np.float32)  # ~34 dB
    assert psnr_db(ref, got) >= 30 and np.abs(got - ref).mean() <= t["atol"]
    t = output_tolerance({"cosine": 0.9, "sqnr_db": 8.0}, [ref])
    assert sqnr_db(ref, got) >= 8 and np.abs(got - ref).mean() <= t["atol"]
    assert output_tolerance({"token_agreement": 0.9}, [ref]) == {"stat": "quantile", "atol": 0.0, "quantile": 0.9}
    assert output_tolerance({"max_abs": 1e-4}, [ref]) == {"stat": "elemwise", "atol": 1e-4}


def test_fp16_recipe_pins_layernorm_to_fp32(tmp_path):
    from edgeth.quantize.plan import PrecisionPlan
    from edgeth.targets import get_target
    from fixture_programs import fixture_programs

    den = next(p for p in fixture_programs() if p.name == "denoiser")  # has LayerNorm
    get_target("tensorrt").export(den, PrecisionPlan("fp16"), tmp_path)
    rec = json.loads((tmp_path / "denoiser.trt.json").read_text())
    assert rec["layer_precisions"] and set(rec["layer_precisions"].values()) == {"fp32"}
    assert "--fp16" in rec["trtexec_args"] and "--precisionConstraints=obey" in rec["trtexec_args"]
    assert any(a.startswith("--layerPrecisions=") and "layer_norm" in a for a in rec["trtexec_args"])


# -- build script and provenance ---------------------------------------------------------------
def test_build_script_dry_run(fixture_bundle, tmp_path):
    d = shutil.copytree(_trt_dir(fixture_bundle), tmp_path / "trt")
    res = subprocess.run(["sh", "build_engine.sh", "--dry-run", "--verify", "--dla-core", "1", "--workspace", "512"],
                         cwd=d, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    tre = [ln for ln in lines if ln.startswith("trtexec ")]
    assert len(tre) == len(list(d.glob("*.trt.json")))
    for ln in tre:
        assert "--noTF32" in ln and "--memPoolSize=workspace:512" in ln and "--timingCacheFile=timing.cache" in ln
        assert "--useDLACore=1 --allowGPUFallback" in ln
    assert any(ln.startswith("polygraphy run renderer.onnx --trt") for ln in lines)
    assert not list(d.glob("*.engine")) and not list(d.glob("*.engine.json"))
    bad = subprocess.run(["sh", "build_engine.sh", "--bogus"], cwd=d, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown option" in bad.stderr


def test_build_script_writes_provenance_beside_each_engine(fixture_bundle, tmp_path):
    """The shell path end to end with a stand-in for trtexec (it writes --saveEngine and logs a version)."""
    d = shutil.copytree(_trt_dir(fixture_bundle), tmp_path / "trt")
    stub = tmp_path / "trtexec"
    stub.write_text('#!/bin/sh\nfor a in "$@"; do case "$a" in --saveEngine=*) echo engine > "${a#--saveEngine=}";; esac; done\n'
                    'echo "[I] TensorRT version: 10.3.0"\n')
    stub.chmod(0o755)
    res = subprocess.run(["sh", "build_engine.sh", "--dla-core", "0"], cwd=d, capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "TRTEXEC": str(stub)})
    assert res.returncode == 0, res.stdout + res.stderr
    for recipe in d.glob("*.trt.json"):
        r = json.loads(recipe.read_text())
        rec = json.loads(device.record_path(d / r["engine"]).read_text())
        assert rec["tensorrt"] == "10.3.0" and rec["builder"] == "trtexec" and rec["dla_core"] == 0
        assert rec["onnx_sha256"] == device.sha256(d / r["onnx"]) and rec["engine_sha256"] == device.sha256(d / r["engine"])
        assert rec["timing_cache"] == "timing.cache" and rec["workspace_mb"] == 1024 and rec["flags"] == r["flags"]


def _record(tmp_path: Path) -> tuple[dict, dict, str]:
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    recipe = {"program": "m", "onnx": "m.onnx", "engine": "m.engine", "precision": "fp16", "flags": ["--fp16"]}
    here = {"tensorrt": "10.3.0", "gpu": {"name": "Orin", "compute_capability": "8.7"}, "l4t": "R36.4.0"}
    rec = device.make_record(recipe, tmp_path, here, "trtexec", {"dla_core": 0, "timing_cache": "timing.cache"})
    return rec, here, device.sha256(tmp_path / "m.onnx")


def test_provenance_matches_only_its_own_device_and_onnx(tmp_path):
    rec, here, sha = _record(tmp_path)
    assert rec["dla_core"] == 0 and rec["flags"] == ["--fp16"] and rec["l4t"] == "R36.4.0"
    assert device.mismatches(rec, here, sha) == []
    cases = {"TensorRT 10.3.0": {**here, "tensorrt": "10.4.0"},
             "GPU Orin": {**here, "gpu": {"name": "RTX 4090", "compute_capability": "8.9"}},
             "L4T R36.4.0": {**here, "l4t": "R35.5.0"}}
    for needle, other in cases.items():
        why = device.mismatches(rec, other, sha)
        assert why and needle in "; ".join(why)
    assert "different ONNX" in device.mismatches(rec, here, "0" * 64)[0]
    assert device.mismatches(None, here, sha)  # an engine without provenance is refused


def test_runner_refuses_a_foreign_engine(tmp_path):
    from edgeth.errors import BundleError
    from edgeth.targets.tensorrt.runner import check_provenance

    rec, here, _ = _record(tmp_path)
    (tmp_path / "m.engine").write_bytes(b"engine")
    device.write_record(rec, tmp_path / "m.engine")
    check_provenance(tmp_path / "m.engine", tmp_path / "m.onnx", here)  # same device: accepted
    with pytest.raises(BundleError, match="rebuild on this device: sh build_engine.sh"):
        check_provenance(tmp_path / "m.engine", tmp_path / "m.onnx", {**here, "tensorrt": "8.6.2"})


def test_lint_cli_on_the_fixture_bundle(fixture_bundle):
    from bundle_support import cli

    _trt_dir(fixture_bundle)
    ok = cli("lint", str(fixture_bundle["bundle"]), "--target", "tensorrt", "--trt-version", "10.x")
    assert ok.returncode == 0 and "renderer: clean" in ok.stdout, ok.stdout + ok.stderr
    bad = cli("lint", str(fixture_bundle["bundle"]), "--trt-version", "7.0")
    assert bad.returncode == 2 and bad.stderr.startswith("error: no TensorRT operator table")


# -- on a machine with TensorRT and a GPU ---------------------------------------------------------
def _trt_runs() -> tuple[bool, str]:
    from edgeth.targets import get_target

    a = get_target("tensorrt").runtime_available()
    return a.ok, a.reason


@pytest.mark.skipif(not _trt_runs()[0], reason=f"TensorRT engines cannot run here: {_trt_runs()[1]}")
def test_engine_build_run_parity(fixture_bundle, tmp_path):
    from edgeth.bundle.io import load_bundle
    from edgeth.runtime_py.verify import verify_programs  # noqa: F401  (parity through the runner)

    d = shutil.copytree(Path(fixture_bundle["bundle"]), tmp_path / "b")
    b = load_bundle(d)
    from edgeth.targets import get_target

    for name in b.program_names:
        run = get_target("tensorrt").runner(d / "tensorrt", b.entry(name, "tensorrt"))
        assert device.record_path(d / "tensorrt" / f"{name}.engine").exists()
        for ins, outs in b.golden_calls(name):
            for got, ref in zip(run(ins), outs):
                assert np.abs(got - ref).max() <= 1e-3
