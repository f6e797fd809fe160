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
import shutil
from pathlib import Path
from typing import Any

from edgeth.errors import InputError
from edgeth.io_utils import sha256_file

def resolve_family(run_dir: str | Path, model: str | None = None):
    """The registered ModelFamily for a run (edgeth.models.resolve_run, the one resolver)."""
    from edgeth.models import resolve_run

    return resolve_run(run_dir, model)


def run_preset(run_dir: Path) -> str | None:
    from edgeth.models import family_json

    found = family_json(Path(run_dir))
    v = found[1].get("preset") if found else None
    return v if isinstance(v, str) else None


def reference_files(family: Any, run_dir: Path) -> list[Path]:
    """Files (under run_dir) that rebuild the programs: the family's choice (ModelFamily.reference_files)."""
    from edgeth.models import ModelFamily

    run_dir = Path(run_dir).resolve()  # a family's hook may return run_dir / name: relative only if run_dir was
    hook = getattr(family, "reference_files", None)
    files = [Path(p) for p in (hook(run_dir) if callable(hook) else ModelFamily.reference_files(family, run_dir))]
    files = sorted({p if p.is_absolute() else run_dir / p for p in files})
    if not any(p.suffix == ".safetensors" for p in files):
        raise InputError(f"{run_dir} holds no .safetensors weights", "train a run first (`edgeth train`) or pass its folder")
    return files


def copy_reference(family: Any, run_dir: Path, dest: Path) -> tuple[list[str], str]:
    """Copy the checkpoint into dest (BUNDLE/reference); return (bundle paths, checkpoint sha256).

    The checkpoint hash covers every copied file's relative path and content.
    """
    run_dir = Path(run_dir).resolve()
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
