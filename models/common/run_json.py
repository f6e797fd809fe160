"""Reading a family's RUN/<family>.json (shared by the families' run.py files).

Shape legend: none (JSON only).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeth.errors import InputError


def read_family_json(path: Path, family: str, label: str) -> dict[str, Any] | None:
    """The JSON object at `path` (None when absent); InputError when unreadable or not `family`'s."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{p} is not valid JSON ({e})", "re-run `edgeth train` into a fresh --out directory") from e
    if not isinstance(d, dict) or d.get("family") != family:
        fam = d.get("family") if isinstance(d, dict) else None
        raise InputError(f"{p} is not an {label} run (family={fam!r})", f"pass an {label} run directory")
    return d


def resume_or_preset(out: Path, preset: str, overrides: dict[str, Any] | None, read_run_json, from_json, get_preset):
    """The run's config: an existing RUN/<family>.json wins (resume; a different preset is an
    error); otherwise the named preset with `overrides` applied."""
    d = read_run_json(out)
    if d is not None:
        if d.get("preset") != preset:
            raise InputError(f"{out} holds a {d.get('preset')!r} run, not {preset!r}",
                             "pass the same --preset to resume, or a fresh --out directory")
        return from_json(d["config"])
    cfg = get_preset(preset)
    return cfg.replace(**overrides) if overrides else cfg
