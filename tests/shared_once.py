"""Build a session fixture once per test run, also when pytest-xdist splits the run over workers.

`make test` runs the suite on every core (pytest-xdist, `-n` in pyproject.toml). Session
fixtures are per worker, so an expensive one (a family's fixture training) would be built by
every worker that needs it. `shared_dir(tmp_path_factory, key, build)` builds it once in a
folder every worker of this run sees (the run's base temp folder) under a file lock: the first
worker builds (into a temp folder, renamed when complete), the others wait and reuse it. Without
xdist it is simply built in the session's temp folder.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator


def run_root(tmp_path_factory) -> Path:
    """The temp folder shared by every worker of this run (the session's own without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (created if needed) held for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_once(done: Path, build: Callable[[Path], None]) -> Path:
    """`done` built by build(tmp) into a sibling temp folder and renamed; reused when complete."""
    with locked(done.parent / f".{done.name}.lock"):
        if (done / ".complete").is_file():
            return done
        tmp = done.parent / f".{done.name}.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        build(tmp)
        (tmp / ".complete").write_text("ok\n")
        shutil.rmtree(done, ignore_errors=True)
        tmp.rename(done)
        return done


def shared_dir(tmp_path_factory, key: str, build: Callable[[Path], None]) -> Path:
    """A folder built once per test run by build(folder) (see the module doc)."""
    return build_once(run_root(tmp_path_factory) / "shared" / key, build)
