"""The README stays true: its support matrix matches the recorded conformance results, its runnable blocks run,
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


def test_support_matrix_is_generated_from_the_conformance_record():
    from edgeth.build import support_matrix_markdown

    text = README.read_text()
    assert _between(text, "support-matrix") == support_matrix_markdown().strip(), (
        "README's support matrix is stale: paste edgeth.build.support_matrix_markdown() between the markers")


def test_conformance_record_holds_only_known_cases_and_outcomes():
    """Every recorded case names a registered family, target and precision and an outcome the suite
    can produce; cases not recorded yet show as "not run" in the matrix (never as a pass)."""
    from edgeth.conformance import case_id, load_record, support_matrix_markdown
    from edgeth.models import model_names
    from edgeth.quantize.plan import PRECISIONS
    from edgeth.targets import target_names

    known = {case_id(m, t, p) for m in model_names() for t in target_names() for p in PRECISIONS}
    cases = load_record()["cases"]
    assert set(cases) <= known, sorted(set(cases) - known)
    assert all(c["status"] in ("passed", "simulated", "skipped") for c in cases.values())
    assert support_matrix_markdown().count("not run") == len(known - set(cases))


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
