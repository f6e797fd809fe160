"""Weights and optimizer state as safetensors (never pickle), written atomically.

- save_weights / load_weights: a module's state_dict <-> one .safetensors file, with clear
  errors for a missing file, a corrupt file, and mismatched keys or shapes.
- save_optimizer / load_optimizer: a torch optimizer's state_dict split into its tensors
  (safetensors) and its non-tensor parts (JSON in the same file's metadata).
- Stage checkpoints (the files `fit` writes per stage):
    {stage}.safetensors        weights to use (the EMA weights when EMA is on)
    {stage}.raw.safetensors    raw (non-EMA) weights; only written when EMA is on
    {stage}.optim.safetensors  optimizer state (tensors + JSON metadata)
    {stage}.json               config, step, world size, seed, versions; written LAST, so it
                               is the commit marker: every file above carries the same step in
                               its metadata and load_stage refuses files that disagree.
    {stage}.log.jsonl          one JSON object per logged step (see edgeth.train.loop)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from edgeth.errors import InputError
from edgeth.io_utils import atomic_path

_MAX_LISTED = 5


def _listed(keys) -> str:
    keys = list(keys)
    head = ", ".join(str(k) for k in keys[:_MAX_LISTED])
    return head + (f", … (+{len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> Path:
    from safetensors.torch import save_file

    out, seen = {}, set()
    for k, v in tensors.items():
        t = v.detach().to("cpu").contiguous()
        # safetensors refuses aliased storage (tied weights): give each name its own copy.
        ptr = t.untyped_storage().data_ptr() if t.numel() else None
        if ptr is not None and ptr in seen:
            t = t.clone()
        elif ptr is not None:
            seen.add(ptr)
        out[k] = t
    with atomic_path(path) as tmp:
        save_file(out, str(tmp), metadata={k: str(v) for k, v in metadata.items()})
    return Path(path)


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a .safetensors file; InputError if missing or unreadable."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise InputError(f"weights file not found: {path}",
                         "check the path, or train first so the run directory has this file")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises SafetensorError / OSError / ValueError on bad bytes
        raise InputError(f"cannot read {path}: not a valid safetensors file ({type(e).__name__}: {e})",
                         "the file is corrupt or truncated; re-train or restore it from a good copy") from e
    return tensors, meta


def save_weights(module: torch.nn.Module, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write module.state_dict() to `path` (.safetensors), atomically. Metadata values become strings."""
    return save_tensors(module.state_dict(), Path(path), dict(metadata or {}))


def check_state_keys(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor], source: str,
                     strict: bool = True) -> None:
    """Raise InputError naming the first offending keys when `got` does not fit `expected`."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [f"{k} (file {tuple(got[k].shape)} vs model {tuple(expected[k].shape)})"
              for k in expected if k in got and tuple(got[k].shape) != tuple(expected[k].shape)]
    problems = []
    if strict and missing:
        problems.append(f"{len(missing)} missing key(s): {_listed(missing)}")
    if strict and unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_listed(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es): {_listed(shapes)}")
    if problems:
        raise InputError(f"{source} does not match the model: " + "; ".join(problems),
                         "load weights saved from the same model family and preset (or pass strict=False "
                         "to ignore missing/unexpected keys)")


def load_weights(module: torch.nn.Module, path: str | Path, strict: bool = True) -> dict[str, str]:
    """Load a .safetensors file into `module` in place; returns the file's metadata.

    strict=False tolerates missing/unexpected keys (shape mismatches are always an error).
    """
    tensors, meta = read_safetensors(path)
    check_state_keys(module.state_dict(), tensors, str(path), strict=strict)
    module.load_state_dict(tensors, strict=strict)
    return meta


# -- optimizer state -------------------------------------------------------------------------
def save_optimizer(opt: torch.optim.Optimizer, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Tensors of opt.state_dict() as `state.<param index>.<name>`; the rest as JSON metadata."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for name, val in st.items():
            if torch.is_tensor(val):
                tensors[f"state.{idx}.{name}"] = val
            else:
                scalars.setdefault(str(idx), {})[name] = val
    meta = dict(metadata or {})
    meta["param_groups"] = json.dumps(sd["param_groups"])
    meta["scalars"] = json.dumps(scalars)
    meta["optimizer"] = type(opt).__name__
    return save_tensors(tensors, Path(path), meta)


def load_optimizer(opt: torch.optim.Optimizer, path: str | Path) -> dict[str, str]:
    """Inverse of save_optimizer; InputError when the saved state does not fit `opt`."""
    tensors, meta = read_safetensors(path)
    try:
        groups = json.loads(meta["param_groups"])
        scalars = json.loads(meta.get("scalars", "{}"))
    except (KeyError, json.JSONDecodeError) as e:
        raise InputError(f"{path} has no readable optimizer metadata ({e})",
                         "the optimizer file is not from edgeth's trainer; delete it to restart training") from e
    if meta.get("optimizer") and meta["optimizer"] != type(opt).__name__:
        raise InputError(f"{path} holds {meta['optimizer']} state, the trainer uses {type(opt).__name__}",
                         "resume with the same optimizer, or start a fresh run directory")
    state: dict[int, dict[str, Any]] = {}
    for key, t in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = t
    for idx, st in scalars.items():
        state.setdefault(int(idx), {}).update(st)
    want = [len(g["params"]) for g in opt.state_dict()["param_groups"]]
    have = [len(g["params"]) for g in groups]
    if want != have:
        raise InputError(f"{path} is for parameter groups of sizes {have}, the model now has {want}",
                         "the set of trainable parameters changed; resume with the same model/stage "
                         "or use a fresh output directory")
    try:
        opt.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as e:
        raise InputError(f"{path} does not fit the optimizer: {e}",
                         "use a fresh output directory, or resume=False") from e
    return meta


# -- stage checkpoints -----------------------------------------------------------------------
def stage_paths(out_dir: str | Path, stage: str) -> dict[str, Path]:
    d = Path(out_dir)
    return {
        "weights": d / f"{stage}.safetensors",
        "raw": d / f"{stage}.raw.safetensors",
        "optim": d / f"{stage}.optim.safetensors",
        "json": d / f"{stage}.json",
        "log": d / f"{stage}.log.jsonl",
    }


def read_stage_json(out_dir: str | Path, stage: str) -> dict[str, Any] | None:
    """The stage's JSON (None when there is no checkpoint); InputError when unreadable."""
    p = stage_paths(out_dir, stage)["json"]
    if not p.is_file():
        return None
    try:
        info = json.loads(p.read_text())
        int(info["step"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise InputError(f"checkpoint metadata {p} is unreadable ({e})",
                         "delete the stage's files in the output directory, or pass resume=False") from e
    return info


def step_of(meta: dict[str, str], path: Path) -> int:
    try:
        return int(meta["step"])
    except (KeyError, ValueError) as e:
        raise InputError(f"{path} carries no step in its metadata",
                         "it was not written by edgeth's trainer; use a fresh output directory") from e


def read_jsonl(path: str | Path, max_step: int | None = None) -> list[dict[str, Any]]:
    """Rows of a JSONL log; an unparseable (half-written) line is skipped; rows past max_step dropped."""
    p = Path(path)
    if not p.is_file():
        return []
    rows = []
    for line in p.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and (max_step is None or int(row.get("step", 0)) <= max_step):
            rows.append(row)
    return rows


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    return Path(path)
