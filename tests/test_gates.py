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


def _host_dump(bundle, target, folder, perturb=None, frames=None, backend=None):
    """What an app would dump: the recorded host outputs of `target`'s artifacts (optionally
    perturbed), and the pipeline replayed on that backend (or `backend`; `frames` replace its frames)."""
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
    res = Pipeline(bundle, backend or backend_for_target(target)).run_golden()
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

    bug = verify_outputs(b, _host_dump(b, "executorch", tmp_path / "bug", _green_off), "executorch")
    assert bug.gates == {"runtime": "fail", "quality": "pass"}, bug.lines()
    assert [c.name for c in bug.failures] == ["runtime/renderer/frame"]
    assert "bias_lsb8" in bug.failures[0].worst
    # the same bug is far inside what the old INT8 rows (18 dB) and gate 2 (30 dB) allow
    q = next(c for c in bug.checks if c.name == "quality/renderer/frame")
    assert q.passed and q.metrics["psnr_db"] > 35


def _green_off(name, arrays, steps=3):
    """A kernel bug: the renderer's green channel `steps` 8-bit steps too bright, every pixel."""
    if name != "renderer":
        return arrays
    frame = arrays["out_frame"].copy()
    frame[..., 1, :, :] += steps * float(frame.max() - frame.min()) / 255
    return {**arrays, "out_frame": frame}


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
    assert B.gate1_across_executions(_bundle(int8), target) == []


def test_gate1_across_executions_sees_a_runtime_that_computes_differently(int8, monkeypatch):
    """The check above can fail: an execution whose kernel is off (the renderer's green channel
    3 steps, as in the kernel-bug dump) is reported with the way it ran."""
    real = B.other_executions

    def off(bundle, target, name, full=True):
        for label, run in real(bundle, target, name, full):
            if name != "renderer":
                yield label, run
                continue

            def bent(ins, run=run):
                return [_green_off("renderer", {"out_frame": run(ins)[0]})["out_frame"]]
            yield label, bent

    monkeypatch.setattr(B, "other_executions", off)
    bad = B.gate1_across_executions(_bundle(int8), "onnx", full=False)
    assert bad and all(b.startswith("renderer via ") and "runtime/renderer/frame" in b for b in bad), bad


# -- Core ML: gate 1 recorded by coreml-sim where Core ML cannot run (issues 13, 19) ----------------
@pytest.fixture(scope="module")
def coreml_int8(tmp_path_factory):
    from edgeth.targets import get_target

    if not get_target("coreml").available().ok:
        pytest.skip(f"Core ML cannot export here: {get_target('coreml').available().reason}")
    if get_target("coreml").runtime_available().ok:
        pytest.skip("Core ML runs here (macOS): its own runtime records gate 1, not coreml-sim")
    with B.registered():  # the pipeline replays need the fixture family
        yield _export_coreml(tmp_path_factory.mktemp("gates-coreml"))


def _export_coreml(root, **kw):
    from edgeth.bundle.export import export_bundle

    mp = pytest.MonkeyPatch()
    mp.setenv("EDGETH_CACHE", str(root / "cache"))
    image, audio = B.sample_media()
    try:
        with B.registered():
            res = export_bundle(B.make_run(root / "run"), root / "bundle", targets=["coreml"], precision="int8",
                                image=image, audio=audio, golden_calls=2, progress=False, quantize={"calib_clips": 1},
                                **kw)
        return {"root": root, "bundle": res.path, "checks": res.checks}
    finally:
        mp.undo()


def test_coreml_sim_records_gate1_outputs_at_export_and_says_so(coreml_int8):
    from edgeth.bundle.inspect import describe

    b = _bundle(coreml_int8)
    rec = b.manifest["targets"]["coreml"]
    assert rec["verified_at_export"] is False and rec["simulated_at_export"] == "coreml-sim"
    assert "not_simulated" not in rec
    for p in b.programs:
        exp = p["artifacts"]["coreml"]["expected"]
        assert exp["source"] == "coreml-sim" and exp["file"] == f"golden/coreml/{p['name']}.npz"
        assert exp["file"] in b.manifest["files"]
    names = {c.name for c in coreml_int8["checks"]}
    assert {f"coreml-sim:coreml/program/{p}/{o['name']}" for p in b.program_names
            for o in b.program(p)["outputs"]} <= names
    assert all(c.passed for c in coreml_int8["checks"])
    assert "coreml (int8, simulated at export on coreml-sim)" in "\n".join(describe(b))


def test_coreml_device_dump_is_judged_against_coreml_sim_outputs(coreml_int8, tmp_path):
    """An iPhone's dump of the same .mlpackage: gate 1 against what coreml-sim computed at export."""
    from edgeth.runtime_py.device_outputs import verify_outputs

    b = _bundle(coreml_int8)
    good = verify_outputs(b, _host_dump(b, "coreml", tmp_path / "good", backend="coreml-sim"), "coreml")
    assert good.gates == {"runtime": "pass", "quality": "pass"}, good.lines()
    assert any("coreml-sim" in n and "simulation" in n for n in good.notes), good.notes

    bug = verify_outputs(b, _host_dump(b, "coreml", tmp_path / "bug", _green_off, backend="coreml-sim"), "coreml")
    assert bug.gates == {"runtime": "fail", "quality": "pass"}, bug.lines()
    assert [c.name for c in bug.failures] == ["runtime/renderer/frame"]


def test_verify_on_coreml_sim_checks_gate1(coreml_int8):
    from edgeth.runtime_py.verify import verify_bundle

    rep = verify_bundle(_bundle(coreml_int8), "coreml-sim", pipeline=False)
    runtime = [c for c in rep.checks if c.name.startswith("runtime/")]
    assert runtime and all(c.passed for c in runtime) and rep.gates["runtime"] == "pass"
    assert any("determinism" in n for n in rep.notes), rep.notes


def test_a_wrong_coreml_conversion_fails_the_export_on_coreml_sim(tmp_path, monkeypatch):
    """The .mlpackage computing something else than PyTorch (here: the renderer's frame in
    [-1, 1] instead of [0, 1], a mis-folded normalization as coremltools 9.0 once produced) is
    refused at export, with nothing written, though Core ML itself cannot run here."""
    from edgeth.errors import CheckFailed
    from edgeth.targets import get_target
    from edgeth.targets.coreml import sim

    if not get_target("coreml").available().ok or get_target("coreml").runtime_available().ok:
        pytest.skip("needs Core ML export without its runtime (Linux)")
    real = sim.make_runner

    def wrong(artifact_dir, entry, threads=None):
        r = real(artifact_dir, entry, threads)
        if entry["name"] != "renderer":
            return r
        return lambda *ins: [2.0 * o - 1.0 for o in r(*ins)]

    monkeypatch.setattr(sim, "make_runner", wrong)
    with pytest.raises(CheckFailed, match="coreml-sim:coreml/program/renderer"):
        _export_coreml(tmp_path)
    assert not (tmp_path / "bundle").exists()


def test_an_op_coreml_sim_lacks_leaves_gate1_unrecorded_with_the_reason(tmp_path, monkeypatch):
    from edgeth.errors import UnsupportedOp
    from edgeth.runtime_py.verify import verify_bundle
    from edgeth.targets import get_target
    from edgeth.targets.coreml import sim

    if not get_target("coreml").available().ok or get_target("coreml").runtime_available().ok:
        pytest.skip("needs Core ML export without its runtime (Linux)")
    real = sim.make_runner

    def lacking(artifact_dir, entry, threads=None):
        if entry["name"] == "renderer":
            raise UnsupportedOp("coreml-sim has no op 'made_up' (program renderer)", "add it to the op table")
        return real(artifact_dir, entry, threads)

    monkeypatch.setattr(sim, "make_runner", lacking)
    b = _bundle(_export_coreml(tmp_path))
    rec = b.manifest["targets"]["coreml"]
    assert rec["simulated_at_export"] == "coreml-sim" and "made_up" in rec["not_simulated"]["renderer"]
    assert "expected" not in b.program("renderer")["artifacts"]["coreml"]
    assert b.program("denoiser")["artifacts"]["coreml"]["expected"]["source"] == "coreml-sim"
    monkeypatch.setattr(sim, "make_runner", real)
    with B.registered():
        rep = verify_bundle(b, "coreml-sim", pipeline=False)
    assert any("not checked for coreml programs renderer" in n and "made_up" in n for n in rep.notes), rep.notes


def test_bias_lsb8_tells_a_systematic_error_from_scattered_rounding_flips():
    """Two legitimate INT8 executions differ by scattered one-LSB flips (measured: ONNX Runtime
    with graph optimizations on vs off moves 37 % of an MDCF denoiser's outputs); a kernel bug
    moves a whole channel. bias_lsb8 sees the second and not the first."""
    from edgeth.runtime_py.parity import bias_lsb8, max_lsb8, mean_lsb8

    rng = np.random.default_rng(0)
    ref = rng.uniform(-1, 1, (1, 64, 48)).astype(np.float32)
    lsb = float(ref.max() - ref.min()) / 255
    flips = ref + lsb * 2.7 * rng.choice([-1.0, 1.0], ref.shape) * (rng.random(ref.shape) < 0.37)
    channel = ref.copy()
    channel[..., 5] += 2 * lsb
    assert bias_lsb8(ref, flips) < 1.0 and mean_lsb8(ref, flips) > 0.9  # noisy, not systematic
    assert bias_lsb8(ref, channel) == pytest.approx(2.0, rel=1e-3) and max_lsb8(ref, channel) < 2.01
    assert mean_lsb8(ref, channel) < 0.05  # what the mean alone would miss
    small = rng.uniform(-1, 1, (1, 20)).astype(np.float32)  # no slice of 32 elements: no bias figure
    assert bias_lsb8(small, small + 0.5) == 0.0
