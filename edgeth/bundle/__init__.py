"""Bundles: per-target compiled programs + manifest.json + golden vectors + reference checkpoint.

    BUNDLE/manifest.json            schema in edgeth/bundle/manifest.py (format version 1)
    BUNDLE/reference/               the run's config + safetensors weights (torch backend)
    BUNDLE/golden/<program>.npz     in_<name> / out_<name>, stacked over recorded calls
    BUNDLE/golden/pipeline.npz      image, audio, noise.<name>, frames, extra.<stage>
    BUNDLE/<target>/<program>.<ext> compiled programs (+ .bpte, recipes)

`load_bundle(path)` validates and checks hashes; `export_bundle(run_dir, out, ...)` writes
one (edgeth.bundle.export). Submodules are imported on demand to keep `import edgeth` light.
"""
from __future__ import annotations

from typing import Any

__all__ = ["Bundle", "load_bundle", "export_bundle", "FORMAT_VERSION"]


def __getattr__(name: str) -> Any:
    if name in ("Bundle", "load_bundle"):
        from edgeth.bundle import io

        return getattr(io, name)
    if name == "export_bundle":
        from edgeth.bundle.export import export_bundle

        return export_bundle
    if name == "FORMAT_VERSION":
        from edgeth.bundle.manifest import FORMAT_VERSION

        return FORMAT_VERSION
    raise AttributeError(name)
