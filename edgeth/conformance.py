"""Recorded conformance results and the support matrix generated from them.

The shared conformance suite (tests/conformance) runs every registered model family on every
target at every precision. Each case ends in one status:

  passed    exported and, where the runtime exists here, run and matched its golden vectors
  simulated the runtime is absent here (a declared skip) but a simulator of it ran every program
            on its golden calls and passed (Core ML on coreml-sim, a numpy simulation of Core
            ML semantics: never presented as Core ML)
  skipped   a declared skip (tests/conformance/skips.py: data, with the reason), e.g. TensorRT
            needs a GPU; the export itself still ran and was checked for structure
  failed    (never recorded on main: the suite fails instead)

`EDGETH_RECORD_CONFORMANCE=1 pytest tests/conformance` writes the results to
edgeth/conformance.json; without it, each case checks that its live status matches the record,
so the README's matrix (support_matrix_markdown, kept in sync by tests/test_readme.py) always
says what the suite last proved, not what a quantizer claims.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RECORD = Path(__file__).with_name("conformance.json")
STATUSES = ("passed", "simulated", "skipped", "failed")


def case_id(family: str, target: str, precision: str) -> str:
    return f"{family}/{target}/{precision}"


def load_record(path: Path = RECORD) -> dict[str, Any]:
    if not path.is_file():
        return {"cases": {}}
    return json.loads(path.read_text())


def write_record(cases: dict[str, dict[str, Any]], path: Path = RECORD) -> Path:
    """Merge `cases` into the record (atomically) and return its path."""
    from edgeth.io_utils import write_json

    rec = load_record(path)
    rec["cases"] = {**rec.get("cases", {}), **cases}
    rec["cases"] = dict(sorted(rec["cases"].items()))
    write_json(path, rec)
    return path


def support_matrix_markdown(record: dict[str, Any] | None = None) -> str:
    """Model x target x precision from the recorded conformance results (README keeps a copy).

    Cells: `pass`, `sim (n)` / `skip (n)` with the numbered reason below the table, `FAIL`, or `not run`
    (a registered family, target or precision the record does not cover yet)."""
    from edgeth.models import model_names
    from edgeth.quantize.plan import PRECISIONS
    from edgeth.targets import target_names

    cases = (record if record is not None else load_record()).get("cases", {})
    reasons: list[str] = []
    lines = ["| model | target | " + " | ".join(PRECISIONS) + " |", "|---|---|" + "---|" * len(PRECISIONS)]
    for m in model_names():
        for t in target_names():
            cells = []
            for p in PRECISIONS:
                c = cases.get(case_id(m, t, p))
                if c is None:
                    cells.append("not run")
                elif c["status"] == "passed":
                    cells.append("pass")
                elif c["status"] in ("skipped", "simulated"):
                    r = c.get("reason", "")
                    if r not in reasons:
                        reasons.append(r)
                    word = "sim" if c["status"] == "simulated" else "skip"
                    cells.append(f"{word} ({reasons.index(r) + 1})")
                else:
                    cells.append("FAIL")
            lines.append(f"| {m} | {t} | " + " | ".join(cells) + " |")
    if reasons:
        lines.append("")
        lines += [f"({i}) {r}" for i, r in enumerate(reasons, 1)]
    return "\n".join(lines)
