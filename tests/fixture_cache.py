"""The tiny fixture run of each model family, trained once per test session.

`EDGETH_FIXTURE_CACHE=DIR` (a developer convenience; CI never sets it) keeps runs in DIR keyed
by the hash of the family's source folder and the shared code it trains with, so a local rerun
of a few tests does not retrain; without it every test run trains once into its temp folder
(shared by the xdist workers, tests/shared_once.py).
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ("edgeth/train", "models/common")


def source_hash(name: str) -> str:
    h = hashlib.sha256()
    for folder in (f"models/{name}", *SHARED):
        for f in sorted((ROOT / folder).rglob("*.py")):
            h.update(f.relative_to(ROOT).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def fixture_run(name: str, corpus: Path, tmp_path_factory) -> Path:
    """The family's tiny fixture run: from EDGETH_FIXTURE_CACHE when set, else trained once per
    test run (shared by the xdist workers, see shared_once)."""
    from shared_once import build_once, shared_dir

    def train(out: Path) -> None:
        from edgeth.models import get_model

        t0 = time.perf_counter()
        get_model(name).fixture_run(out, Path(corpus))
        (out / "fixture_train_seconds.txt").write_text(f"{time.perf_counter() - t0:.1f}\n")

    cache = os.environ.get("EDGETH_FIXTURE_CACHE")
    if cache:
        return build_once(Path(cache) / f"{name}-{source_hash(name)}", train)
    return shared_dir(tmp_path_factory, f"run-{name}", train)
