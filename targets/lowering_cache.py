"""A content-addressed cache of lowered programs: one graph is lowered once, across exports.

ExecuTorch's XNNPACK lowering (tens of ms per graph node, measured on 2 cores: 21 s for a
213-node denoiser), Core ML's ct.convert and, less so, torch.onnx.export (the FP32 model every
ONNX and TensorRT artifact starts from) are the costliest steps of an export, and the same
graph is often lowered again by a later export: a program pinned to FP32 is the same graph in
an fp16, int8, int8-weights and mixed export; a mixed plan that keeps no layer float quantizes
to the graph int8 gives (same calibration); re-exporting one target at a new precision leaves
the others' graphs as they were.

The key is what the converter is given, not where it came from:

  graph_key(ep, recipe)   every node of the ExportedProgram (op, target, arguments, output
                          shape/dtype/stride), its signature and range constraints, the bytes
                          of every weight, buffer and constant; `recipe` (the target and its
                          options, e.g. the backend config); the toolchain (torch, executorch,
                          coremltools, ... versions, edgeth's version and a hash of the
                          edgeth.targets source that does the lowering)

Equal keys give the converter equal input, so its stored output is what running it again gives
(the converters are deterministic: tests/test_bundle.py exports twice without the cache and
compares the manifests byte for byte).

The cache is opt-in and on disk, so separate processes share it: `EDGETH_EXPORT_CACHE=DIR`,
`edgeth export --cache DIR`, or `using(DIR)` around the work. Entries are
DIR/lowered/<kind>/<key>/{files/..., entry.json}, built under a per-key file lock (a second
process waits for the first rather than lowering the same graph twice) into a temp folder and
renamed into place, so a killed export never leaves a half-written entry. Without a directory
`cached` simply builds.
"""
from __future__ import annotations

import contextlib
import contextvars
import fcntl
import hashlib
import json
import os
import shutil
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

ENV = "EDGETH_EXPORT_CACHE"
_DIR: contextvars.ContextVar[Path | None] = contextvars.ContextVar("edgeth_export_cache", default=None)
STATS: Counter = Counter()  # "<kind>.hit" / "<kind>.miss" in this process (for reports and tests)

Files = dict[str, bytes]  # relative path -> bytes; "a/b/" (with b"") is an empty folder


def cache_dir() -> Path | None:
    """The active cache folder: the innermost using(DIR), else $EDGETH_EXPORT_CACHE, else None."""
    d = _DIR.get()
    if d is not None:
        return d
    env = os.environ.get(ENV, "").strip()
    return Path(env) if env else None


@contextlib.contextmanager
def using(directory: str | Path | None) -> Iterator[None]:
    """Use `directory` as the cache for the block (None: leave the current setting)."""
    if directory is None:
        yield
        return
    token = _DIR.set(Path(directory))
    try:
        yield
    finally:
        _DIR.reset(token)


# -- the key ---------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def toolchain() -> str:
    """Versions of what lowers a graph + a hash of edgeth's own target code."""
    from edgeth.bundle.manifest import tool_versions
    from edgeth.bundle.records import edgeth_version

    h = hashlib.sha256(json.dumps([edgeth_version(), tool_versions()], sort_keys=True).encode())
    root = Path(__file__).resolve().parent
    for f in sorted(root.rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _tensor_digest(t) -> str:
    import torch

    t = t.detach()
    if t.layout != torch.strided:
        return f"{t.layout}:{t.dtype}:{tuple(t.shape)}"
    flat = t.contiguous().reshape(-1)
    data = flat.view(torch.uint8) if flat.numel() else flat
    return f"{t.dtype}{tuple(t.shape)}:" + hashlib.sha256(data.numpy().tobytes()).hexdigest()


def _describe(x: Any) -> str:
    """A deterministic text for a node argument / meta value (tensors by shape, dtype and bytes)."""
    import torch

    if isinstance(x, torch.fx.Node):
        return "%" + x.name
    if isinstance(x, (list, tuple)):
        inner = ",".join(_describe(v) for v in x)
        return f"[{inner}]" if isinstance(x, list) else f"({inner})"
    if isinstance(x, dict):
        return "{" + ",".join(f"{k}:{_describe(v)}" for k, v in sorted(x.items(), key=lambda kv: str(kv[0]))) + "}"
    if isinstance(x, torch.Tensor):
        if getattr(x, "fake_mode", None) is not None or type(x) is not torch.Tensor:  # a FakeTensor: metadata
            stride = tuple(x.stride()) if x.layout == torch.strided else ()
            return f"T{tuple(x.shape)}{x.dtype}{stride}"
        return "tensor:" + _tensor_digest(x)
    return repr(x)


def graph_key(ep, recipe: str) -> str:
    """The cache key of lowering ExportedProgram `ep` with `recipe` (see the module doc)."""
    h = hashlib.sha256(f"{recipe}\n{toolchain()}\n".encode())
    for node in ep.graph.nodes:
        h.update(f"{node.op}|{node.name}|{node.target}|{_describe(node.args)}|{_describe(node.kwargs)}|"
                 f"{_describe(node.meta.get('val'))}\n".encode())
    h.update(str(ep.graph_signature).encode())
    h.update(_describe({str(k): str(v) for k, v in ep.range_constraints.items()}).encode())
    tensors = {**dict(ep.state_dict), **dict(ep.constants)}
    for name in sorted(tensors):
        v = tensors[name]
        h.update(f"{name}={_tensor_digest(v) if hasattr(v, 'detach') else repr(type(v))}\n".encode())
    return h.hexdigest()[:32]


# -- the store -------------------------------------------------------------------------------
def cached(kind: str, key: str, build: Callable[[], tuple[Files, dict[str, Any]]]) -> tuple[Files, dict[str, Any]]:
    """(files, report) of `build()`, from the cache when an entry for (kind, key) exists."""
    root = cache_dir()
    if root is None:
        return build()
    entry = root / "lowered" / kind / key
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        lock = open(entry.parent / f".{key}.lock", "a")
    except OSError as e:
        from edgeth.errors import InputError

        raise InputError(f"cannot use the export cache {root}: {e.strerror or e}",
                         "pass a writable folder to --cache (EDGETH_EXPORT_CACHE), or leave it unset") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            got = _read(entry)
            if got is not None:
                STATS[f"{kind}.hit"] += 1
                return got
            STATS[f"{kind}.miss"] += 1
            files, report = build()
            _write(entry, files, report)
            return files, report
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read(entry: Path) -> tuple[Files, dict[str, Any]] | None:
    meta = entry / "entry.json"
    if not meta.is_file():
        return None
    try:
        rec = json.loads(meta.read_text())
        files = {rel: b"" if _is_dir(rel) and (entry / "files" / rel).is_dir() else (entry / "files" / rel).read_bytes()
                 for rel in rec["files"]}
        if any(hashlib.sha256(b).hexdigest() != rec["sha256"][rel] for rel, b in files.items()):
            return None  # damaged on disk: rebuild (and replace) it
        return files, rec["report"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write(entry: Path, files: Files, report: dict[str, Any]) -> None:
    tmp = entry.parent / f".{entry.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    write_tree(tmp / "files", files)
    rec = {"files": sorted(files), "sha256": {rel: hashlib.sha256(b).hexdigest() for rel, b in files.items()},
           "report": report}
    (tmp / "entry.json").write_text(json.dumps(rec, sort_keys=True, default=str))
    shutil.rmtree(entry, ignore_errors=True)
    tmp.rename(entry)


def _is_dir(rel: str) -> bool:
    return rel.endswith("/")


def read_tree(root: Path) -> Files:
    """{relative path: bytes} of every file under `root` (a folder artifact such as an .mlpackage),
    empty folders included (an .mlpackage of a program without weights lists an empty weights/
    folder in its Manifest.json, and does not load without it)."""
    out: Files = {}
    for f in sorted(root.rglob("*")):
        rel = f.relative_to(root).as_posix()
        if f.is_file():
            out[rel] = f.read_bytes()
        elif f.is_dir() and not any(f.iterdir()):
            out[rel + "/"] = b""
    return out


def write_tree(root: Path, files: Files) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        if _is_dir(rel):
            (root / rel).mkdir(parents=True, exist_ok=True)
            continue
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
