"""runtime_py: backends (no silent fallback), Pipeline over a bundle, `edgeth run`, and the
end-to-end round trip of every registered model family through every runnable target."""
from __future__ import annotations

import numpy as np
import pytest

import bundle_support as bs
from bundle_support import cli
from edgeth.bundle.io import load_bundle
from edgeth.errors import InputError, TargetUnavailable
from edgeth.runtime_py.parity import compare_frames

TARGETS = bs.runnable_targets()
BACKENDS = bs.runnable_backends()


@pytest.fixture(autouse=True, scope="module")
def _family():
    with bs.registered():
        yield


def test_available_backends_and_no_silent_fallback(fixture_bundle):
    from edgeth.runtime_py.backends import available_backends, program_call

    b = load_bundle(fixture_bundle["bundle"])
    avail = available_backends(b)
    assert set(avail) == {"torch", "onnxruntime", "executorch", "coreml", "coreml-sim", "tensorrt"}
    assert avail["torch"].ok
    for name in BACKENDS:
        assert avail[name].ok, (name, avail[name].reason)
    off = [n for n, a in avail.items() if not a.ok]
    assert off and all(avail[n].reason for n in off)
    with pytest.raises(TargetUnavailable) as e:
        program_call(b, off[0])
    assert "available backends: " in str(e.value) and "torch" in str(e.value)
    with pytest.raises(InputError, match="unknown backend 'tflite'"):
        program_call(b, "tflite")


def test_seeded_run_reproduces_the_golden_trajectory(fixture_bundle):
    from edgeth.runtime_py.pipeline import Pipeline

    b = load_bundle(fixture_bundle["bundle"])
    g = b.pipeline_golden()
    pipe = Pipeline(b, "torch")
    same = pipe.run(g["image"], g["audio"], seed=b.manifest["golden"]["seed"])
    np.testing.assert_array_equal(same.frames, g["frames"])
    other = pipe.run(g["image"], g["audio"], seed=123)
    assert np.abs(other.extras["motion"] - g["extra.motion"]).max() > 1e-3
    fewer = pipe.run(g["image"], g["audio"], seed=0, steps=1)  # driver options pass through
    assert pipe.call.calls["denoiser"] == 6 + 6 + 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_recorded_noise_gives_every_backend_the_reference_video(fixture_bundle, backend):
    from edgeth.runtime_py.pipeline import Pipeline

    b = load_bundle(fixture_bundle["bundle"])
    g = b.pipeline_golden()
    res = Pipeline(b, backend).run(g["image"], g["audio"], noise=Pipeline.golden_noise(b))
    c = compare_frames(g["frames"], res.frames, {"psnr_db": 60.0})
    assert c.passed, c.worst
    assert res.frames.shape == (16, 32, 32, 3) and res.fps == 25


def test_pipeline_rejects_bad_media(fixture_bundle):
    from edgeth.runtime_py.pipeline import Pipeline

    pipe = Pipeline(fixture_bundle["bundle"], "torch")
    image, audio = bs.sample_media()
    with pytest.raises(InputError, match="portrait has shape"):
        pipe.run(image[..., 0], audio)
    with pytest.raises(InputError, match="audio has shape"):
        pipe.run(image, np.zeros((2, 100), np.float32))


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "torch"] or ["(none)"])
def test_cli_run_matches_the_torch_reference(fixture_bundle, tmp_path, backend):
    if backend == "(none)":
        pytest.skip("no exported backend runs here")
    pytest.importorskip("edgeth.data.video", reason="edgeth.data.video (read_image/read_audio/write_mp4) not landed")
    png, wav = bs.write_media(tmp_path / "media")
    outs = {}
    for be in ("torch", backend):
        mp4, npz = tmp_path / f"{be}.mp4", tmp_path / f"{be}.npz"
        r = cli("run", str(fixture_bundle["bundle"]), "--image", str(png), "--audio", str(wav), "--backend", be,
                "-o", str(mp4), "--seed", "3", "--npz", str(npz), "--no-crop")
        assert r.returncode == 0, r.stderr[-2000:]
        assert mp4.stat().st_size > 0 and "frames at 25 fps" in r.stdout
        outs[be] = np.load(npz)["frames"]
    c = compare_frames(outs["torch"], outs[backend], {"psnr_db": 60.0})
    assert c.passed, c.worst


# -- every registered model family x every runnable target ------------------------------------
def _families() -> list[str]:
    from edgeth.models import model_names

    return [n for n in model_names() if n != bs.FAMILY]


def _family_bundle(family: str, targets: list[str], family_run, tmp_path_factory, precision: str = "fp32"):
    """Export the family's shared tiny fixture run (conftest `family_run`) for `targets`."""
    from edgeth.bundle.export import export_bundle
    from edgeth.models import get_model

    run_dir = family_run(family)
    out = tmp_path_factory.mktemp(f"{family}_{precision}_{'_'.join(targets) or 'reference'}") / "bundle"
    # a short golden run (few sampler steps where the family has them) keeps it cheap
    steps = {"steps": 4} if any(o.name == "steps" for o in get_model(family).options()) else {}
    return export_bundle(run_dir, out, targets=targets, precision=precision, seconds=0.8, options=steps,
                         progress=False)


@pytest.mark.parametrize("family", _families())
def test_family_reference_rebuilds_from_bundle(family, family_run, tmp_path_factory):
    """The torch backend rebuilds the programs from BUNDLE/reference alone and reproduces the golden run."""
    from edgeth.runtime_py.verify import verify_bundle

    res = _family_bundle(family, [], family_run, tmp_path_factory)
    rep = verify_bundle(load_bundle(res.path), "torch")
    assert rep.passed, "\n".join(rep.lines())
    assert all(c.metrics.get("max_abs", 0.0) <= 1e-6 for c in rep.checks if c.name.startswith("quality/"))


# Every registered family x every target x every precision (export -> program parity on both
# gates -> pipeline replay -> bench; Core ML programs on coreml-sim) is the conformance suite's
# job: tests/conformance (it replaced the per-family round-trip, INT8 and coreml-sim tests here).
