"""Mixed precision under an end-to-end budget, `edgeth export --precision mixed`, and `edgeth debug`.

Uses the bundle tests' `bundlefix` family (tests/fixture_programs.py's renderer + denoiser chained by a
real driver: audio -> motion by denoiser steps -> frames), whose random weights make full
INT8 visibly worse than FP32.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import bundle_support as B


@pytest.fixture(scope="module")
def fam(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("mixed")
    run_dir = B.make_run(root / "run")
    with B.registered():
        from edgeth.models import get_model

        family = get_model(B.FAMILY)
        run = family.load(run_dir)
        yield {"root": root, "run_dir": run_dir, "programs": family.programs(run), "spec": family.pipeline(run)}


def _clips():
    return [B.sample_media(0.64, seed=s) for s in (0, 1)]


def _runner(spec, clip):
    from edgeth.runtime_py.pipelines import SeededNoise

    image, audio = clip

    def run(call):
        return B.drive(spec, call, image=image, audio=audio, noise=SeededNoise(0)).frames

    return run


def _full_int8_psnr(programs, calib, run):
    from edgeth.quantize.mixed import Budget, EndToEnd
    from edgeth.quantize.sensitivity import ProgramSim, all_int8

    sims = {p.name: ProgramSim(p, calib.for_program(p.name, 32)) for p in programs}
    return EndToEnd(programs, sims, run, Budget("psnr", 0.0)).raw(all_int8(sims))


def test_mixed_search_meets_a_budget_full_int8_misses_and_is_reproducible(fam):
    from edgeth.quantize.calibrate import cached_capture, torch_call
    from edgeth.quantize.mixed import Budget, search_mixed
    from edgeth.quantize.planning import backend_quality

    programs, spec = fam["programs"], fam["spec"]
    calib = cached_capture(fam["root"] / "cache", programs, spec, _clips())
    run = _runner(spec, _clips()[0])
    full = _full_int8_psnr(programs, calib, run)
    budget = Budget("psnr", round(full + 5.0, 2))
    assert not budget.meets(full) and np.isfinite(full)
    reference = run(torch_call(programs))
    verified = []

    def verify(plans):  # the real backend: every program exported to ExecuTorch and run
        verified.append(backend_quality(programs, plans, "executorch", run, budget, reference, threads=1))
        return verified[-1]

    res = search_mixed(programs, calib, run, budget, verify=verify)
    assert res.met and res.achieved >= budget.bound and res.full_int8 == pytest.approx(full)
    assert verified and res.verified == verified[-1] >= budget.bound
    n_float = sum(len(v) for v in res.float_layers().values())
    n_units = len(res.ranking)
    assert 0 < n_float < n_units
    for name, plan in res.plans.items():
        assert plan.precision == "mixed" and plan.budget == {"stage": "frames", "metric": "psnr", "bound": budget.bound}
        assert set(plan.notes["why_float"]) == set(plan.float_layers)
        assert len(plan.calibration) == min(32, calib.count(name))
    # the ranking is the reason: every kept layer ranks among the most sensitive
    kept_ranks = [i for i, s in enumerate(res.ranking) if s.unit.name in res.plans[s.program].float_layers]
    assert max(kept_ranks) < n_units - 1
    # reproducible from the same checkpoint and calibration set
    again = search_mixed(programs, calib, run, budget)
    assert again.float_layers() == res.float_layers() and again.achieved == pytest.approx(res.achieved)


def _calib_dir(root: Path) -> Path:
    """Two <name>.png + <name>.wav clips (the second mirrored and reversed)."""
    from PIL import Image, ImageOps

    d = root / "calib"
    d.mkdir(exist_ok=True)
    png, wav = B.write_media(root / "media", seconds=0.64)
    shutil.copy(png, d / "clip0.png")
    shutil.copy(wav, d / "clip0.wav")
    ImageOps.mirror(Image.open(png)).save(d / "clip1.png")
    shutil.copy(wav, d / "clip1.wav")
    return d


@pytest.fixture(scope="module")
def mixed_bundle(fam, tmp_path_factory):
    from edgeth.bundle.export import export_bundle

    root = tmp_path_factory.mktemp("mixedbundle")
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGETH_CACHE", str(root / "cache"))
    image, audio = B.sample_media()
    with B.registered():
        res = export_bundle(fam["run_dir"], root / "bundle", targets=["executorch", "onnx"], precision="mixed",
                            image=image, audio=audio, progress=False,
                            quantize={"budget": "psnr=45", "calib_dir": _calib_dir(root), "calib_clips": 2})
        yield res
    mp.undo()


def test_export_mixed_records_plan_budget_and_parity(mixed_bundle):
    m = mixed_bundle.manifest
    assert m["precision"] == "mixed"
    q = m["quantization"]["mixed"]
    assert q["calibration"]["clips"] == 2 and q["calibration"]["clip_source"].endswith("calib")
    search = q["mixed"]
    assert search["budget"] == {"stage": "frames", "metric": "psnr", "bound": 45.0} and search["met"] and search["verified_on"] == "executorch"
    assert search["verified"] >= 45.0
    for tg in ("executorch", "onnx"):
        assert m["targets"][tg]["precision"] == "mixed"
        assert m["targets"][tg]["tolerances"]["frames"]["psnr_db"] == 45.0
    for p in m["programs"]:
        rec = p["artifacts"]["executorch"]["quantization"]
        assert rec["precision"] == "mixed" and rec["float_layers"] == search["float_layers"][p["name"]]
        assert p["artifacts"]["executorch"]["report"]["quantization"]["calibration"].startswith("pipeline capture")
        assert p["artifacts"]["onnx"]["report"]["quantization"]["format"] == "QDQ"
    assert all(c.passed for c in mixed_bundle.checks)


def test_debug_names_the_first_divergent_layer(mixed_bundle):
    ok = B.cli("debug", str(mixed_bundle.path), "--program", "renderer", "--budget", "sqnr=0", "--json")
    assert ok.returncode == 0, ok.stderr
    rep = json.loads(ok.stdout)
    layers = rep["layers"]
    assert rep["first_divergence"] is None and len(layers) >= 10
    assert [r["index"] for r in layers] == list(range(len(layers)))  # graph order
    assert {"conv2d", "linear", "grid_sampler"} <= {r["op"] for r in layers}
    assert all(not u.startswith("conv2d_") for u in rep["unobserved"])  # only fused-away ops may be missing
    strict = B.cli("debug", str(mixed_bundle.path), "--program", "renderer", "--target", "onnx", "--budget", "sqnr=300")
    B.assert_clean_error(strict, 1, "first divergence at layer 0")
    assert "<-- first below budget" in strict.stdout and "(mixed)" in strict.stdout
    bad = B.cli("debug", str(mixed_bundle.path), "--program", "nope")
    B.assert_clean_error(bad, 2, "no program", "renderer")


def test_precision_and_budget_errors_are_clean(fam, tmp_path):
    B.make_run(tmp_path / "run")
    with B.registered():
        r = B.cli("export", "--ckpt", str(tmp_path / "run"), "--out", str(tmp_path / "b"), "--precision", "int4")
        B.assert_clean_error(r, 2, "unknown precision", "int8")
        r = B.cli("export", "--ckpt", str(tmp_path / "run"), "--out", str(tmp_path / "b"), "--target", "onnx",
                  "--precision", "int8", "--budget", "psnr=30")
        B.assert_clean_error(r, 2, "--budget applies to --precision mixed")
        r = B.cli("export", "--ckpt", str(tmp_path / "run"), "--out", str(tmp_path / "b"), "--target", "onnx",
                  "--precision", "mixed", "--budget", "ssim=3")
        B.assert_clean_error(r, 2, "bad budget", "psnr=35")


def test_quantize_only_keeps_the_other_programs_fp32_and_limits_the_search(fam, tmp_path):
    """`--quantize-only renderer`: int8 and mixed plans quantize the named program alone (the
    others FP32, the mixed search ranks only its layers); unknown names list the programs."""
    from edgeth.errors import InputError
    from edgeth.quantize.planning import make_plans

    programs, spec = fam["programs"], fam["spec"]
    names = [p.name for p in programs]
    one = names[0]
    int8 = make_plans(programs, spec, "int8", clips=_clips(), cache_dir=tmp_path, quantize_only=[one], progress=False)
    assert {n: p.precision for n, p in int8.plans.items()} == {n: ("int8" if n == one else "fp32") for n in names}
    mixed = make_plans(programs, spec, "mixed", budget="psnr=80", clips=_clips(), cache_dir=tmp_path,
                       quantize_only=[one], progress=False)
    assert mixed.plans[one].precision == "mixed"
    assert all(mixed.plans[n].precision == "fp32" for n in names if n != one)
    assert {s["program"] for s in mixed.mixed["ranking"]} == {one}
    with pytest.raises(InputError, match="no program nope") as e:
        make_plans(programs, spec, "int8", clips=_clips(), cache_dir=tmp_path, quantize_only=["nope"], progress=False)
    assert all(n in e.value.fix for n in names)
    # a bundle: the named program INT8, the others FP32, the target still called int8 (not mixed)
    from edgeth.bundle.export import export_bundle

    image, audio = B.sample_media()
    with B.registered(), pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGETH_CACHE", str(tmp_path / "cache"))
        res = export_bundle(fam["run_dir"], tmp_path / "b8", targets=["onnx"], precision="int8", image=image,
                            audio=audio, progress=False, quantize={"quantize_only": [one],
                                                                   "calib_dir": _calib_dir(tmp_path), "calib_clips": 2})
    m = res.manifest
    assert m["targets"]["onnx"]["precision"] == "int8"
    got = {p["name"]: p["artifacts"]["onnx"]["precision"] for p in m["programs"]}
    assert got == {n: ("int8" if n == one else "fp32") for n in names}
    # the CLI: a clean one-line error, nothing written
    B.make_run(tmp_path / "run")
    with B.registered():
        r = B.cli("export", "--ckpt", str(tmp_path / "run"), "--out", str(tmp_path / "b"), "--target", "onnx",
                  "--precision", "int8", "--quantize-only", "nope")
        B.assert_clean_error(r, 2, "--quantize-only names no program nope", one)
    assert not (tmp_path / "b").exists()
