"""The README stays true: its support matrix matches the registries, its runnable blocks run,
and the two commands stay at the top."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"<!-- runnable -->\s*\n```(\w+)\n(.*?)```", re.S)


def _between(text: str, name: str) -> str:
    m = re.search(rf"<!-- {name}:begin -->\n(.*?)<!-- {name}:end -->", text, re.S)
    assert m, f"README has no {name} markers"
    return m.group(1).strip()


def test_support_matrix_is_generated_from_the_registries():
    from edgeth.build import support_matrix_markdown

    text = README.read_text()
    assert _between(text, "support-matrix") == support_matrix_markdown().strip(), (
        "README's support matrix is stale: paste edgeth.build.support_matrix_markdown() between the markers")


def test_support_matrix_covers_every_model_and_target():
    from edgeth.build import support_matrix_markdown
    from edgeth.models import model_names
    from edgeth.targets import target_names

    rows = [r for r in support_matrix_markdown().splitlines()[2:]]
    assert len(rows) == len(model_names()) * len(target_names())
    for t in target_names():
        assert any(f"| {t} | yes |" in r for r in rows), f"{t} lacks fp32"


def test_two_commands_come_first():
    text = README.read_text()
    first_block = text.split("```sh", 1)[1].split("```", 1)[0]
    assert "make demo" in first_block and "make test" in first_block


def _blocks() -> list[tuple[str, str]]:
    return BLOCK.findall(README.read_text())


def test_readme_has_runnable_blocks():
    kinds = {k for k, _ in _blocks()}
    assert {"sh", "python"} <= kinds


@pytest.mark.parametrize("i", range(len(BLOCK.findall(README.read_text()))))
def test_runnable_block(i, tmp_path):
    kind, code = _blocks()[i]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = ["bash", "-euo", "pipefail", "-c", code] if kind == "sh" else [sys.executable, "-c", code]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"README block {i} ({kind}) failed:\n{code}\n{r.stdout}\n{r.stderr}"
    assert r.stdout.strip(), "a runnable block should print something"
