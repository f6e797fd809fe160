"""Core ML target: the .mlpackage exports on Linux and reads back as a spec; predict() needs macOS."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgeth.errors import TargetUnavailable
from edgeth.targets import get_target
from fixture_programs import fixture_programs

pytestmark = pytest.mark.skipif(not get_target("coreml").available().ok, reason="coremltools is not installed")


def _entry(p, art):
    from edgeth.targets.common import runner_entry

    return runner_entry(p, art)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("coreml")
    return out, [(p, get_target("coreml").export(p, None, out)) for p in fixture_programs()]


def test_mlpackage_is_written_and_loads_as_a_spec(exported):
    from edgeth.targets.coreml.exporter import describe

    out, pairs = exported
    for p, art in pairs:
        pkg = out / art.files[0]
        assert art.files == [f"{p.name}.mlpackage"] and (pkg / "Manifest.json").is_file()
        # coremltools' ExecuTorch debug-handle map varies with the process's earlier lowerings
        assert not (pkg / "executorch_debug_handle_mapping.json").exists()
        spec = describe(pkg)
        assert [(i["name"], tuple(i["shape"])) for i in spec["inputs"]] == [(s.name, s.shape) for s in p.inputs]
        assert [(o["name"], o["dtype"]) for o in spec["outputs"]] == [(s.name, "FLOAT32") for s in p.outputs]
        assert art.report["mil_ops"] == spec["mil_ops"] and art.report["size_bytes"] > 0
        assert json.loads(json.dumps(art.report))["deployment_target"] == "iOS16"
    assert "resample" in pairs[0][1].report["mil_ops"]  # the renderer's grid_sample
    assert "layer_norm" in pairs[1][1].report["mil_ops"]
    assert not [f for f in out.iterdir() if f.name.startswith(".")]  # no temp dirs left behind


def test_reexport_replaces_the_package(exported):
    out, pairs = exported
    p, art = pairs[1]
    before = sorted(f.relative_to(out) for f in (out / art.files[0]).rglob("*"))
    get_target("coreml").export(p, None, out)
    assert sorted(f.relative_to(out) for f in (out / art.files[0]).rglob("*")) == before
    assert not [f for f in out.iterdir() if f.name.startswith(".")]


def test_predict_matches_eager_on_macos(exported):
    out, pairs = exported
    t = get_target("coreml")
    avail = t.runtime_available()
    if not avail.ok:
        with pytest.raises(TargetUnavailable, match="only on macOS"):
            t.runner(out, _entry(*pairs[0]))
        pytest.skip(avail.reason)
    for p, art in pairs:
        run = t.runner(out, _entry(p, art))
        xs = [x.numpy() for x in p.example_inputs]
        (y,) = run(*xs)
        with torch.no_grad():
            assert y.dtype == np.float32 and np.abs(y - p.module(*p.example_inputs).numpy()).max() <= 1e-4
