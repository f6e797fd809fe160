"""The checkpoint inside a bundle (`BUNDLE/reference/`) and the model family that reads it.

Export copies the run's config JSON and safetensors weights into `reference/`, so the
"torch" backend can rebuild the FP32 programs from the bundle alone via the family's
`load()` and `programs()`. A family may narrow what is copied by defining
`reference_files(run_dir) -> [Path]`; by default every `*.json` and `*.safetensors` under
RUN/ (skipping hidden folders, optimizer state and
`*.raw.safetensors` pre-EMA weights) is copied, keeping relative paths.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from edgeth.errors import InputError
from edgeth.io_utils import sha256_file

FAMILY_KEYS = ("family", "model", "model_family")
CONFIG_NAMES = ("config.json", "run.json")


def run_config(run_dir: Path) -> dict[str, Any]:
    """The run's top-level config: config.json / run.json, else the first *.json naming a family."""
    named = [run_dir / n for n in CONFIG_NAMES if (run_dir / n).is_file()]
    others = sorted(p for p in run_dir.glob("*.json") if p not in named)
    for f in named + others:
        try:
            d = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as e:
            if f in named:
                raise InputError(f"{f} is not valid JSON ({e})", "point --ckpt at a RUN/ folder written by `edgeth train`") from None
            continue
        if isinstance(d, dict) and (f in named or any(isinstance(d.get(k), str) for k in FAMILY_KEYS)):
            return d
    return {}


def resolve_family(run_dir: str | Path, model: str | None = None):
    """The registered ModelFamily for a run: `model` if given, else read from RUN's config."""
    from edgeth.models import get_model, model_names

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"checkpoint folder {run_dir} does not exist", "pass --ckpt RUN/ (a folder written by `edgeth train`)")
    if model:
        return get_model(model)
    cfg = run_config(run_dir)
    for k in FAMILY_KEYS:
        v = cfg.get(k)
        if isinstance(v, str) and v:
            return get_model(v)
        if isinstance(v, dict) and isinstance(v.get("name"), str):
            return get_model(v["name"])
    raise InputError(f"cannot tell the model family of {run_dir} (no 'family' in its config)",
                     f"pass --model, one of: {', '.join(model_names())}")


def run_preset(run_dir: Path) -> str | None:
    v = run_config(run_dir).get("preset")
    return v if isinstance(v, str) else None


def reference_files(family: Any, run_dir: Path) -> list[Path]:
    """Files (under run_dir) that rebuild the programs: the family's choice or config + weights."""
    hook = getattr(family, "reference_files", None)
    if callable(hook):
        files = [Path(p) for p in hook(run_dir)]
        files = [p if p.is_absolute() else run_dir / p for p in files]
    else:
        files = [p for p in run_dir.rglob("*") if p.is_file() and p.suffix in (".json", ".safetensors")
                 and not any(part.startswith(".") for part in p.relative_to(run_dir).parts)
                 and "optim" not in p.name.lower() and ".raw." not in p.name]
    files = sorted(set(files))
    if not any(p.suffix == ".safetensors" for p in files):
        raise InputError(f"{run_dir} holds no .safetensors weights", "train a run first (`edgeth train`) or pass its folder")
    return files


def copy_reference(family: Any, run_dir: Path, dest: Path) -> tuple[list[str], str]:
    """Copy the checkpoint into dest (BUNDLE/reference); return (bundle paths, checkpoint sha256).

    The checkpoint hash covers every copied file's relative path and content.
    """
    run_dir = Path(run_dir)
    h = hashlib.sha256()
    rels = []
    for src in reference_files(family, run_dir):
        rel = src.relative_to(run_dir).as_posix()
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out)
        h.update(f"{rel}\t{sha256_file(out)}\n".encode())
        rels.append(f"{dest.name}/{rel}")
    return rels, h.hexdigest()


def load_reference_programs(bundle) -> dict[str, Any]:
    """Rebuild the FP32 programs from BUNDLE/reference via the family: {name: Program}."""
    from edgeth.models import get_model

    family = get_model(bundle.family)
    run = family.load(bundle.reference_dir)
    return {p.name: p for p in family.programs(run)}
