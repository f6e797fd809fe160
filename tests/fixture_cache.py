"""The tiny fixture run of each model family, trained once per test session.

`EDGETH_FIXTURE_CACHE=DIR` (a developer convenience; CI never sets it) keeps runs in DIR keyed
by the hash of the family's source folder and the shared code it trains with, so a local rerun
of a few tests does not retrain; without it every session trains into its own temp folder.
"""
from __future__ import annotations

import hashlib
import os
import shutil
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
    from edgeth.models import get_model

    cache = os.environ.get("EDGETH_FIXTURE_CACHE")
    if cache:
        done = Path(cache) / f"{name}-{source_hash(name)}"
        if (done / ".complete").is_file():
            return done
    out = tmp_path_factory.mktemp(name) / "run"
    t0 = time.perf_counter()
    get_model(name).fixture_run(out, Path(corpus))
    (out / "fixture_train_seconds.txt").write_text(f"{time.perf_counter() - t0:.1f}\n")
    if cache:
        tmp = Path(cache) / f".{done.name}.{os.getpid()}"
        shutil.copytree(out, tmp)
        (tmp / ".complete").write_text("ok\n")
        try:
            tmp.rename(done)
        except OSError:  # another session cached it first
            shutil.rmtree(tmp, ignore_errors=True)
        return done
    return out
