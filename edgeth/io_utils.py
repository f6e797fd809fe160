"""Atomic output: write to a temp path next to the destination, then rename.

An interrupted command never leaves a half-written file or directory behind, even under
kill -9: a folder replaces the old one with one atomic exchange (Linux renameat2), so
`dest` always holds either the old or the new version. Temp names carry the writer's pid
(`.<name>.<pid>.<random>.tmp`); the next write to the same dest removes those of dead
writers, so a killed run never blocks or confuses the next one. `out_lock` serialises
commands that write the same output folder.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from edgeth.errors import EdgethError


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temp path in dest's folder; on success rename it over dest.

    For directories an existing dest is replaced only after the new one is complete.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(dest)
    prefix = f".{dest.name}.{os.getpid()}."
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=dest.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp" + dest.suffix, dir=dest.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        _apply_umask_mode(tmp)
        if is_dir and dest.exists():
            _replace_dir(tmp, dest)
        else:
            os.replace(tmp, dest)
    except BaseException:
        _remove(tmp)
        raise


def _replace_dir(tmp: Path, dest: Path) -> None:
    """Put the folder tmp at dest; afterwards tmp holds the old folder, which is removed."""
    if not _exchange(tmp, dest):  # no renameat2 here: two renames; clean_stale undoes a kill between them
        old = dest.with_name(f".{dest.name}.{os.getpid()}.old.tmp")
        os.replace(dest, old)
        os.replace(tmp, dest)
        tmp = old
    shutil.rmtree(tmp, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes
    import errno

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def clean_stale(dest: str | os.PathLike) -> list[Path]:
    """Remove temp files/folders left next to dest by writers that died (kill -9, power loss).

    If dest itself is missing and a dead writer's `.old.tmp` copy of it exists (a kill between
    the two renames where renameat2 is unavailable), that copy is put back first."""
    dest = Path(dest)
    if not dest.parent.is_dir():
        return []
    removed = []
    for p in sorted(dest.parent.glob(f".{glob.escape(dest.name)}.*.tmp*")):
        pid = p.name[len(dest.name) + 2:].split(".", 1)[0]
        if not pid.isdigit() or pid_alive(int(pid)):
            continue
        if p.name.endswith(".old.tmp") and not dest.exists():
            os.replace(p, dest)
            continue
        _remove(p)
        removed.append(p)
    return removed


class OutputLocked(EdgethError):
    """Another edgeth process is writing the same output."""


@contextlib.contextmanager
def out_lock(dest: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on output `dest` (`.<name>.lock` beside it) for the block.

    The lock is an flock, so the kernel drops it when its holder dies: a killed run never
    blocks the next one. A second writer fails at once with OutputLocked naming the holder."""
    import fcntl

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock = dest.with_name(f".{dest.name}.lock")
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise OutputLocked(f"{dest} is being written by another edgeth process (pid {holder})",
                               "wait for it to finish, or pass another output path") from None
        try:  # the holder before us may have removed the file we opened: lock the current one
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield lock
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        os.close(fd)


def _apply_umask_mode(path: Path) -> None:
    """mkstemp/mkdtemp create 0600/0700; give outputs the permissions a plain open() would."""
    if not path.exists():
        return
    umask = os.umask(0)
    os.umask(umask)
    path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def write_json(dest: str | os.PathLike, obj: Any) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    return Path(dest)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()
