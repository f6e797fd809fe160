"""Release gates (issue 19): gate 1 device == host (an artifact vs its own host outputs, tight),
gate 2 quality (vs FP32, the bundle's budget), reported apart.

Fixture: the `bundlefix` family (tests/bundle_support.py) exported at INT8 for ONNX and
ExecuTorch, once per module (2 golden calls, 1 calibration clip).
"""
from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import bundle_support as B

TARGETS = ("executorch", "onnx")


@pytest.fixture(scope="module")
def int8(tmp_path_factory):
    from edgeth.bundle.export import export_bundle

    root = tmp_path_factory.mktemp("gates")
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGETH_CACHE", str(root / "cache"))
    image, audio = B.sample_media()
    with B.registered():
        res = export_bundle(B.make_run(root / "run"), root / "bundle", targets=list(TARGETS), precision="int8",
                            image=image, audio=audio, golden_calls=2, progress=False, quantize={"calib_clips": 1})
        yield {"root": root, "bundle": res.path}
    mp.undo()


def _bundle(int8):
    from edgeth.bundle.io import load_bundle

    return load_bundle(int8["bundle"])


def _host_dump(bundle, target, folder, perturb=None, frames=None):
    """What an app would dump: the recorded host outputs of `target`'s artifacts (optionally
    perturbed), and the pipeline replayed on that backend (or `frames`)."""
    from edgeth.bundle.expected import load_expected
    from edgeth.runtime_py.backends import backend_for_target
    from edgeth.runtime_py.pipeline import Pipeline

    folder.mkdir(parents=True, exist_ok=True)
    for name in bundle.program_names:
        exp = load_expected(bundle, name, target)
        outs = [s["name"] for s in bundle.program(name)["outputs"]]
        arrays = {f"out_{o}": np.stack([c[j] for c in exp]) for j, o in enumerate(outs)}
        if perturb:
            arrays = perturb(name, arrays)
        np.savez(folder / f"{name}.npz", **arrays)
    res = Pipeline(bundle, backend_for_target(target)).run_golden()
    np.savez(folder / "pipeline.npz", frames=res.frames if frames is None else frames,
             **{k: v for k, v in res.extras.items() if isinstance(v, np.ndarray)})
    return folder


def _by_gate(rep):
    from edgeth.runtime_py.gates import gate_of

    out = {"runtime": [], "quality": []}
    for c in rep.checks:
        if gate_of(c):
            out[gate_of(c)].append(c)
    return out


def test_export_records_expected_outputs_and_gate_bounds(int8):
    b = _bundle(int8)
    m = b.manifest
    assert set(m["gates"]) == {"runtime", "quality"}
    for tg in TARGETS:
        assert m["targets"][tg]["quality"]["frames"] == {"psnr_db": 30.0}
        assert "frames:psnr=30" in m["targets"][tg]["budget"]
        for p in b.programs:
            art = p["artifacts"][tg]
            assert art["expected"]["file"] == f"golden/{tg}/{p['name']}.npz" and art["expected"]["file"] in m["files"]
            assert art["gates"]["runtime"] and art["gates"]["quality"]


def test_host_dump_passes_both_gates_kernel_bug_fails_gate1_only(int8, tmp_path):
    from edgeth.runtime_py.device_outputs import verify_outputs

    b = _bundle(int8)
    good = verify_outputs(b, _host_dump(b, "executorch", tmp_path / "good"), "executorch")
    assert good.passed and good.gates == {"runtime": "pass", "quality": "pass"}, good.lines()
    g = _by_gate(good)
    assert {c.name for c in g["runtime"]} == {f"runtime/{p}/{o['name']}" for p in b.program_names
                                              for o in b.program(p)["outputs"]}
    assert "quality/pipeline/frames" in {c.name for c in g["quality"]}

    def channel_off(name, arrays):  # one channel of the denoiser's eps 6 INT8 steps off
        if name != "denoiser":
            return arrays
        eps = arrays["out_eps"].copy()
        step = float(eps.max() - eps.min()) / 255
        eps[..., 3] += 6 * step
        return {**arrays, "out_eps": eps}

    bug = verify_outputs(b, _host_dump(b, "executorch", tmp_path / "bug", channel_off), "executorch")
    assert bug.gates == {"runtime": "fail", "quality": "pass"}, bug.lines()
    assert [c.name for c in bug.failures] == ["runtime/denoiser/eps"]
    # the same bug is far inside what the old INT8 rows (cosine >= 0.9) and gate 2 allow
    q = next(c for c in bug.checks if c.name == "quality/denoiser/eps")
    assert q.passed and q.metrics["cosine"] > 0.99


def test_dump_at_25_db_fails_gate2_only(int8, tmp_path):
    from edgeth.runtime_py.device_outputs import verify_outputs

    b = _bundle(int8)
    ref = b.pipeline_golden()["frames"]
    noise = np.random.default_rng(0).standard_normal(ref.shape).astype(np.float32)
    frames = ref + noise * np.sqrt(10 ** (-25 / 10))  # MSE for 25 dB on a [0, 1] image
    rep = verify_outputs(b, _host_dump(b, "onnx", tmp_path / "d", frames=frames), "onnx")
    assert rep.gates == {"runtime": "pass", "quality": "fail"}, rep.lines()
    bad = next(c for c in rep.failures)
    assert bad.name == "quality/pipeline/frames" and 24 < bad.metrics["psnr_db"] < 26
    assert bad.detail["floor"]["passed"]  # above the old 18 dB "broken export" floor: that is not a release
    assert "broken-export floor" in bad.worst


def test_verify_backends_junit_and_cli_report_gates_apart(int8, tmp_path):
    junit = tmp_path / "v.xml"
    with B.registered():
        r = B.cli("verify", str(int8["bundle"]), "--backend", "executorch,onnxruntime", "--junit", str(junit), "--json")
    assert r.returncode == 0, r.stdout[-3000:]
    out = json.loads(r.stdout)
    for rep in out["reports"]:
        assert rep["gates"] == {"runtime": "pass", "quality": "pass"}
        names = {c["name"] for c in rep["checks"]}
        assert {"runtime/renderer/frame", "quality/renderer/frame", "quality/pipeline/frames"} <= names
    assert "runtime/bundled/renderer" in {c["name"] for c in out["reports"][0]["checks"]}  # INT8 .bpte: own outputs
    cases = {(c.get("classname").split(".", 2)[2], c.get("name")) for c in ET.parse(junit).iter("testcase")}
    assert {("runtime.renderer", "frame"), ("quality.renderer", "frame"), ("quality.pipeline", "frames")} <= cases


def test_old_bundle_without_expected_outputs_verifies_gate2_with_a_note(int8, tmp_path):
    from edgeth.bundle.io import hash_tree, load_bundle, read_manifest, write_manifest
    from edgeth.runtime_py.verify import verify_bundle

    old = tmp_path / "old"
    shutil.copytree(int8["bundle"], old)
    m = read_manifest(old)
    for p in m["programs"]:
        for art in p["artifacts"].values():
            art.pop("expected"), art.pop("gates")
    for t in m["targets"].values():
        t.pop("quality"), t.pop("budget")
    m.pop("gates")
    shutil.rmtree(old / "golden" / "onnx")
    shutil.rmtree(old / "golden" / "executorch")
    m["files"] = hash_tree(old)
    write_manifest(old, m)
    rep = verify_bundle(load_bundle(old), "onnxruntime")
    assert rep.passed and rep.gates["runtime"] == "n/a" and rep.gates["quality"] == "pass"
    assert any("gate 1" in n and "re-export" in n for n in rep.notes)
    frames = next(c for c in rep.checks if c.name == "quality/pipeline/frames")
    assert frames.tolerance == {"psnr_db": 30.0}  # the quality row, not the 18 dB floor it recorded


@pytest.mark.parametrize("target", TARGETS)
def test_gate1_bounds_hold_across_executions_of_one_artifact(int8, target):
    """The same artifact run other ways (threads; ONNX Runtime graph optimizations) stays within
    its RUNTIME bound of the recorded host outputs."""
    from edgeth.runtime_py.verify import compare_program

    b = _bundle(int8)
    for name in b.program_names:
        calls = b.golden_calls(name)
        for run in _executions(b, target, name):
            checks = [c for c in compare_program(b, name, target, [run(ins) for ins, _ in calls], calls)
                      if c.name.startswith("runtime/")]
            assert checks and all(c.passed for c in checks), [(c.name, c.worst) for c in checks]


def _executions(b, target, name):
    from edgeth.targets import get_target

    for threads in (1, 2):
        r = get_target(target).runner(b.artifact_dir(target), b.entry(name, target), threads)
        yield lambda ins, r=r: list(r(*ins))
    if target == "onnx":
        import onnxruntime as ort

        from edgeth.targets.onnx.runner import session as onnx_session

        path = b.artifact_dir("onnx") / b.entry(name, "onnx")["files"][0]
        for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC):
            for threads in (1, 2):
                sess = onnx_session(path, threads, level)
                names = [i.name for i in sess.get_inputs()]
                yield lambda ins, s=sess, n=names: s.run(None, dict(zip(n, ins)))


def test_budget_only_tells_a_quality_miss_from_a_broken_export():
    """edgeth build reports 'budget' (exit 0) only when every failure is a quality check above
    the broken-export floor; a runtime (device == host) failure or a floor miss stays 'fail'."""
    from edgeth.runtime_py.gates import budget_only
    from edgeth.runtime_py.parity import Check

    def q(passed, floor):
        return Check("quality/renderer/frame", {"psnr_db": 30.0}, passed, detail={"floor": {"passed": floor}})

    assert budget_only([q(False, True), q(True, True)])
    assert not budget_only([q(True, True)])  # nothing failed: a pass, not a budget miss
    assert not budget_only([q(False, False)])  # below the floor: broken
    assert not budget_only([q(False, True), Check("runtime/renderer/frame", {}, False)])  # device != host
