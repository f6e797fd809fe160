"""Target registry, CLI, shared input checks and preflight rules (no lowering here)."""
from __future__ import annotations

import json
import platform
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgeth.errors import EdgethError, InputError, TargetUnavailable, UnsupportedOp
from edgeth.program import Program, TensorSpec
from edgeth.quantize.plan import PrecisionPlan
from edgeth.targets import get_target, target_names
from edgeth.targets.common import check_inputs
from edgeth.targets.preflight import export_program, facts


def _program(name, module, *xs, out_shape=(1,)):
    return Program(name, module.eval(), [TensorSpec(f"in{i}", tuple(x.shape)) for i, x in enumerate(xs)],
                   [TensorSpec("out", out_shape)], tuple(xs))


class Warp3D(torch.nn.Module):
    def forward(self, v, g):
        return F.grid_sample(v, g, align_corners=False)


class Volume(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Conv3d(2, 2, 1)
        self.warp = Warp3D()

    def forward(self, v, g):
        return self.warp(self.proj(v), g)


class ScaleInPlace(torch.nn.Module):
    def forward(self, x):
        x.mul_(2.0)
        return x


class MutatesInput(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = ScaleInPlace()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(self.scale(x[:, :4]))  # writes through a view of the graph input


class Gate(torch.nn.Module):
    def forward(self, x):
        return x * 2 if x.sum() > 0 else x


class DataDependent(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)
        self.block = torch.nn.Sequential(torch.nn.ReLU(), Gate())

    def forward(self, x):
        return self.block(self.lin(x))


class Bicubic(torch.nn.Module):
    def forward(self, x, g):
        return F.grid_sample(x, g, mode="bicubic", padding_mode="reflection", align_corners=False)


def test_registry_lists_the_four_targets_and_unknown_names_list_them():
    assert target_names() == ["coreml", "executorch", "onnx", "tensorrt"]
    with pytest.raises(EdgethError, match="choose one of: coreml, executorch, onnx, tensorrt"):
        get_target("tflite")


def test_targets_and_cli_help_stay_light():
    code = ("import sys; import edgeth.targets as T; [T.get_target(n).available() for n in T.target_names()];"
            "from click.testing import CliRunner; from edgeth.cli import cli;"
            "r = CliRunner().invoke(cli, ['targets', '--help']); assert r.exit_code == 0 and 'Example' in r.output;"
            "print([m for m in ('torch','executorch','coremltools','onnxruntime','tensorrt','onnx') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    assert out == "[]", f"heavy modules imported: {out}"


def test_cli_targets_json_says_what_runs_here_and_why_not():
    from click.testing import CliRunner

    from edgeth.cli import cli

    r = CliRunner().invoke(cli, ["targets", "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in json.loads(r.output)}
    assert set(rows) == {"coreml", "executorch", "onnx", "tensorrt"}
    assert rows["executorch"]["export"] and rows["onnx"]["runtime"] and rows["tensorrt"]["export"]
    if platform.system() != "Darwin":
        assert not rows["coreml"]["runtime"] and "only on macOS" in rows["coreml"]["runtime_reason"]
    if not rows["tensorrt"]["runtime"]:
        assert rows["tensorrt"]["runtime_reason"] in ("no NVIDIA GPU", get_target("tensorrt").runtime_available().reason)
        assert "NVIDIA" in rows["tensorrt"]["runtime_reason"]
    text = CliRunner().invoke(cli, ["targets"]).output
    assert "coreml" in text and "tensorrt" in text


def test_check_inputs_names_the_input_and_both_shapes():
    specs = [TensorSpec("image", (1, 3, 8, 8)), TensorSpec("audio", (1, 5, 4), dynamic={1: ("T", 2, 16)})]
    ok = check_inputs("p", specs, [np.zeros((1, 3, 8, 8), np.float32), np.zeros((1, 16, 4), np.float32)])
    assert [a.shape for a in ok] == [(1, 3, 8, 8), (1, 16, 4)]
    with pytest.raises(InputError, match=r"'image'.*expected shape \(1, 3, 8, 8\), given \(1, 3, 4, 4\)"):
        check_inputs("p", specs, [np.zeros((1, 3, 4, 4), np.float32), np.zeros((1, 5, 4), np.float32)])
    with pytest.raises(InputError, match=r"'audio'.*T∈\[2,16\].*given \(1, 17, 4\)"):
        check_inputs("p", specs, [np.zeros((1, 3, 8, 8), np.float32), np.zeros((1, 17, 4), np.float32)])
    with pytest.raises(InputError, match="'image'.*expected dtype float32, given float64"):
        check_inputs("p", specs, [np.zeros((1, 3, 8, 8)), np.zeros((1, 5, 4), np.float32)])
    with pytest.raises(InputError, match="takes 2 inputs"):
        check_inputs("p", specs, [np.zeros((1, 3, 8, 8), np.float32)])


def test_5d_grid_sample_is_an_error_naming_the_module_for_coreml_tensorrt_executorch():
    p = _program("volume", Volume(), torch.randn(1, 2, 4, 4, 4), torch.rand(1, 3, 3, 3, 3) * 2 - 1)
    for name in ("coreml", "tensorrt", "executorch"):
        with pytest.raises(UnsupportedOp, match=r"grid_sample on a 5-D input at module 'warp'"):
            get_target(name).export(p, None, "/nonexistent/never-written")
    onnx_issues = get_target("onnx").preflight(p)  # opset 18 GridSample is 4-D; ONNX Runtime still runs it
    assert [(i.severity, i.module_path) for i in onnx_issues] == [("warning", "warp")]


def test_input_mutation_is_reported_with_its_module():
    p = _program("mut", MutatesInput(), torch.randn(2, 6))
    (m,) = facts(p).mutations
    assert (m.module_path, m.tensor, m.kind) == ("scale", "in0", "input")
    onnx = get_target("onnx").preflight(p)
    assert any(i.severity == "warning" and i.module_path == "scale" and "graph input" in i.construct for i in onnx)
    with pytest.raises(UnsupportedOp, match="in-place aten.mul_.Tensor on graph input 'in0' at module 'scale'"):
        get_target("coreml").check_preflight(p)


def test_data_dependent_control_flow_is_one_clean_error_naming_the_module():
    p = _program("gate", DataDependent(), torch.randn(2, 4))
    (issue,) = get_target("onnx").preflight(p)
    assert issue.severity == "error" and issue.module_path == "block.1" and "data-dependent" in issue.construct
    with pytest.raises(UnsupportedOp, match=r"data-dependent .* at module 'block.1'"):
        export_program(p)


def test_grid_sample_modes_per_target():
    p = _program("bicubic", Bicubic(), torch.randn(1, 2, 6, 6), torch.rand(1, 5, 5, 2) * 2 - 1)
    assert get_target("onnx").preflight(p) == []
    (issue,) = get_target("coreml").preflight(p)
    assert issue.severity == "error" and "mode='bicubic'" in issue.construct


def test_exported_program_is_cached_until_weights_change():
    class Lin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.l = torch.nn.Linear(3, 3)

        def forward(self, x):
            return self.l(x)

    p = _program("lin", Lin(), torch.randn(1, 3))
    ep = export_program(p)
    assert export_program(p) is ep
    with torch.no_grad():
        p.module.l.weight.add_(1.0)
    assert export_program(p) is not ep


@pytest.mark.parametrize("name", ["executorch", "onnx", "coreml", "tensorrt"])
def test_non_fp32_plans_route_to_the_quantizer(name, tmp_path, monkeypatch):
    import importlib

    quantizer = importlib.import_module(f"edgeth.targets.{name}.quantizer")
    seen = []

    def refuse(program, *args):
        seen.append((program.name, args[-1] if name in ("executorch", "coreml", "tensorrt") else args[1]))
        raise EdgethError("sentinel from the quantizer hook")

    monkeypatch.setattr(quantizer, "apply", refuse)
    p = _program("tiny", torch.nn.Linear(3, 2), torch.randn(1, 3), out_shape=(1, 2))
    plan = PrecisionPlan("int8")
    with pytest.raises(EdgethError, match="sentinel from the quantizer hook"):
        get_target(name).export(p, plan, tmp_path)
    assert seen == [("tiny", plan)]
    assert [f.name for f in tmp_path.iterdir() if not f.name.startswith(".")] == []  # nothing half-written


def test_runtime_unavailable_targets_raise_with_the_reason(tmp_path):
    for name in ("coreml", "tensorrt"):
        t = get_target(name)
        avail = t.runtime_available()
        if avail.ok:
            continue
        with pytest.raises(TargetUnavailable, match=re.escape(avail.reason)):
            t.runner(tmp_path, {"name": "x", "files": ["x"], "inputs": [], "outputs": []})
