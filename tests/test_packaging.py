"""The card's layout installs as one namespace, and `import edgeth` stays light."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# source folder -> its name inside the wheel
MAPPING = {
    "edgeth": "edgeth",
    "models": "edgeth/models",
    "quantize": "edgeth/quantize",
    "targets": "edgeth/targets",
    "runtime_py": "edgeth/runtime_py",
}


def _expected_files() -> set[str]:
    out = set()
    for src, dst in MAPPING.items():
        for p in (ROOT / src).rglob("*.py"):
            if "__pycache__" in p.parts:
                continue
            out.add(f"{dst}/{p.relative_to(ROOT / src).as_posix()}")
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
        cwd=out,
    )
    (whl,) = out.glob("edgeth-*.whl")
    return whl


def test_wheel_contains_every_py_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = _expected_files()
    assert len(expected) > 10
    missing = sorted(expected - names)
    assert not missing, f"files missing from the wheel (list their packages in pyproject.toml): {missing}"


def test_wheel_has_target_readmes(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for t in ("executorch", "onnx", "coreml", "tensorrt"):
        if (ROOT / "targets" / t / "README.md").exists():
            assert f"edgeth/targets/{t}/README.md" in names


def test_every_package_folder_is_listed():
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    for src, dst in MAPPING.items():
        for init in (ROOT / src).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / src).parts
            pkg = ".".join([*dst.split("/"), *rel])
            assert pkg in listed, f"{pkg} ({init.parent}) not listed in [tool.setuptools].packages"


def test_no_bare_component_imports():
    bad = []
    for src in ("edgeth", "models", "quantize", "targets", "runtime_py", "tests", "benchmarks"):
        for p in (ROOT / src).rglob("*.py"):
            for i, line in enumerate(p.read_text().splitlines(), 1):
                s = line.strip()
                for comp in ("models", "quantize", "targets", "runtime_py"):
                    if s.startswith(f"import {comp}") or s.startswith(f"from {comp} ") or s.startswith(f"from {comp}."):
                        bad.append(f"{p.relative_to(ROOT)}:{i}: {s}")
    assert not bad, "use edgeth.<component>, never the bare folder name:\n" + "\n".join(bad)


def test_import_edgeth_is_light():
    code = (
        "import sys, time; t=time.perf_counter(); import edgeth, edgeth.cli; dt=time.perf_counter()-t;"
        "heavy=[m for m in ('torch','executorch','coremltools','nncf','tensorrt','onnxruntime') if m in sys.modules];"
        "print(dt, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split(" ", 1)
    assert out[1].strip() == "[]", f"import edgeth pulled in heavy modules: {out[1]}"
    assert float(out[0]) < 1.0


def test_cli_help_lists_commands_with_examples():
    from click.testing import CliRunner

    from edgeth.cli import COMMANDS, cli

    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0
    for name in cli.list_commands(None):
        assert name in r.output
        sub = CliRunner().invoke(cli, [name, "--help"])
        assert sub.exit_code == 0, sub.output
        assert "Example" in sub.output, f"`edgeth {name} --help` has no example"
    assert set(cli.list_commands(None)) <= set(COMMANDS)
