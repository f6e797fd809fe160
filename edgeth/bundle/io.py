"""Reading and writing bundles: a folder (or a `.tar` of one) with `manifest.json`.

Loading validates the schema (see manifest.py), refuses newer format versions and checks
the sha256 of every file. Tars are extracted with `filter="data"` into a private temp
folder. Writing happens in a temp folder that is renamed into place when complete.
"""
from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from edgeth.bundle import golden as G
from edgeth.bundle.manifest import MANIFEST, validate
from edgeth.errors import BundleError, InputError
from edgeth.io_utils import atomic_path, sha256_file


class Bundle:
    """A loaded, validated bundle. Use `load_bundle(path)` to get one."""

    def __init__(self, root: Path, manifest: dict[str, Any], source: Path, tmp: Path | None = None):
        self.root = root
        self.manifest = manifest
        self.source = source
        self._golden_cache: dict[str, dict[str, np.ndarray]] = {}
        self.cache: dict[str, Any] = {}  # per-bundle runtime state (e.g. rebuilt torch programs)
        if tmp is not None:  # extracted tar: removed with the Bundle object
            self._cleanup = weakref.finalize(self, shutil.rmtree, tmp, True)

    # -- programs ------------------------------------------------------------------------
    @property
    def programs(self) -> list[dict[str, Any]]:
        return self.manifest["programs"]

    @property
    def program_names(self) -> list[str]:
        return [p["name"] for p in self.programs]

    def program(self, name: str) -> dict[str, Any]:
        for p in self.programs:
            if p["name"] == name:
                return p
        raise BundleError(f"bundle has no program {name!r}", f"programs: {', '.join(self.program_names)}")

    def specs(self, name: str):
        """(input TensorSpecs, output TensorSpecs) of a program."""
        from edgeth.program import TensorSpec

        p = self.program(name)
        return [TensorSpec.from_json(s) for s in p["inputs"]], [TensorSpec.from_json(s) for s in p["outputs"]]

    def pipeline_spec(self):
        from edgeth.program import PipelineSpec

        return PipelineSpec.from_json(self.manifest["pipeline"])

    # -- targets -------------------------------------------------------------------------
    @property
    def targets(self) -> list[str]:
        return sorted(self.manifest["targets"])

    def artifact_dir(self, target: str) -> Path:
        return self.root / target

    def entry(self, program: str, target: str) -> dict[str, Any]:
        """The record a target's runner gets: the program's specs merged with its artifact."""
        p = self.program(program)
        art = p["artifacts"].get(target)
        if art is None:
            raise BundleError(f"bundle has no {target} artifact for program {program!r}",
                              f"targets in this bundle: {', '.join(self.targets) or '(none)'}")
        base = {k: v for k, v in p.items() if k not in ("artifacts", "golden")}
        return {**base, **art, "target": target}

    def tolerance(self, program: str, output: str, target: str | None = None) -> dict[str, float]:
        """The tolerance a port of `program`'s `output` must meet (fp32 row for the reference)."""
        p = self.program(program)
        if target and target in p["artifacts"]:
            tol = p["artifacts"][target]["tolerances"].get(output)
            if tol is not None:
                return dict(tol)
        kind = next(s.get("kind", "tensor") for s in p["outputs"] if s["name"] == output)
        return self.table_tolerance("fp32", kind)

    def table_tolerance(self, precision: str, kind: str) -> dict[str, float]:
        table = self.manifest["tolerances"]
        row = table.get(precision) or table.get("fp32") or {}
        return dict(row.get(kind) or row.get("tensor") or {})

    def stage_tolerance(self, stage: str, target: str | None = None) -> dict[str, float]:
        """Tolerance for a recorded pipeline stage on a target (fp32 for torch): the target's own
        (a mixed plan's budget) for that stage name, else the table row of the stage's kind as the
        pipeline spec declares it."""
        t = self.manifest["targets"].get(target or "", {})
        if stage in t.get("tolerances", {}):
            return dict(t["tolerances"][stage])
        return self.table_tolerance(t.get("precision", "fp32"), self.pipeline_spec().stage_kind(stage))

    # -- golden vectors ------------------------------------------------------------------
    def golden_arrays(self, program: str) -> dict[str, np.ndarray]:
        if program not in self._golden_cache:
            self._golden_cache[program] = G.load_npz(self.root / self.program(program)["golden"]["file"])
        return self._golden_cache[program]

    def golden_calls(self, program: str) -> list[tuple[list[np.ndarray], list[np.ndarray]]]:
        ins, outs = self.specs(program)
        return G.program_calls(self.golden_arrays(program), [s.name for s in ins], [s.name for s in outs])

    def pipeline_golden(self) -> dict[str, np.ndarray]:
        if "__pipeline__" not in self._golden_cache:
            self._golden_cache["__pipeline__"] = G.load_npz(self.root / self.manifest["golden"]["file"])
        return self._golden_cache["__pipeline__"]

    # -- reference (the checkpoint, for the torch backend) ---------------------------------
    @property
    def reference_dir(self) -> Path:
        return self.root / "reference"

    @property
    def family(self) -> str:
        return self.manifest["model"]["family"]


def load_bundle(path: str | Path, *, verify_hashes: bool = True) -> Bundle:
    """Open a bundle folder or `.tar`; validate the schema and (by default) every file hash."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"bundle {path} does not exist", "pass the folder or .tar written by `edgeth export`")
    tmp = None
    root = path
    if path.is_file():
        tmp = Path(tempfile.mkdtemp(prefix="edgeth-bundle-"))
        try:
            root = _extract(path, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    try:
        manifest = read_manifest(root)
        validate(manifest)
        if verify_hashes:
            verify_files(root, manifest)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Bundle(root, manifest, path, tmp)


def read_manifest(root: Path) -> dict[str, Any]:
    mf = root / MANIFEST
    if mf.is_symlink():
        raise BundleError(f"{mf} is a symbolic link", "bundles hold plain files only; re-export or re-copy the bundle")
    if not mf.is_file():
        raise BundleError(f"no {MANIFEST} in {root}", "is this a bundle? point at the folder written by `edgeth export`")
    try:
        return json.loads(mf.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{MANIFEST} is not valid JSON ({e})", "re-export the bundle") from None


def verify_files(root: Path, manifest: dict[str, Any]) -> None:
    """Every file in the manifest's table exists and has its recorded sha256."""
    real_root = root.resolve()
    for rel, want in manifest["files"].items():
        f = root / rel
        parts = Path(rel).parts
        if any((root.joinpath(*parts[:i + 1])).is_symlink() for i in range(len(parts))) \
                or not f.resolve().is_relative_to(real_root):
            raise BundleError(f"bundle file {rel} is a symbolic link or points outside the bundle",
                              "bundles hold plain files only; re-export or re-copy the bundle")
        if not f.is_file():
            raise BundleError(f"bundle file {rel} is missing", "the bundle is incomplete; re-export or re-copy it")
        if sha256_file(f) != want:
            raise BundleError(f"bundle file {rel} does not match its sha256 in the manifest (corrupted or tampered)",
                              "re-export or re-copy the bundle")


def _extract(tar_path: Path, dest: Path) -> Path:
    try:
        with tarfile.open(tar_path, "r:*") as tf:
            bad = [m.name for m in tf.getmembers() if m.name.startswith("/") or ".." in m.name.split("/")]
            if bad:  # the data filter would rewrite an absolute name; refuse both outright
                raise tarfile.FilterError(f"member {bad[0]!r} has an absolute or '..' path")
            tf.extractall(dest, filter="data")
    except tarfile.FilterError as e:  # `..`, absolute paths, links out of the folder, devices
        raise BundleError(f"bundle archive {tar_path.name} holds an unsafe member ({e})",
                          "re-export the bundle with `edgeth export --tar`; never extract it by hand") from None
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise BundleError(f"bundle archive {tar_path.name} is truncated or corrupt ({e})",
                          "re-copy the .tar or re-export with --tar") from None
    if (dest / MANIFEST).is_file():
        return dest
    subs = [p for p in dest.iterdir() if p.is_dir()]
    if len(subs) == 1 and (subs[0] / MANIFEST).is_file():
        return subs[0]
    raise BundleError(f"bundle archive {tar_path.name} holds no {MANIFEST} (truncated or not a bundle)",
                      "re-copy the .tar or re-export with --tar")


def hash_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under root except the manifest, keyed by sorted relative path."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p != root / MANIFEST:
            out[p.relative_to(root).as_posix()] = sha256_file(p)
    return out


def write_manifest(root: Path, manifest: dict[str, Any]) -> Path:
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return root / MANIFEST


def write_tar(bundle_dir: Path, tar_path: Path | None = None) -> Path:
    """A deterministic `.tar` of a bundle folder (sorted, zeroed owners and times), written atomically."""
    bundle_dir = Path(bundle_dir)
    tar_path = Path(tar_path) if tar_path else bundle_dir.with_name(bundle_dir.name + ".tar")

    def clean(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        ti.mtime = 0
        ti.mode = 0o755 if ti.isdir() or ti.mode & 0o111 else 0o644  # keep scripts executable
        return ti

    with atomic_path(tar_path) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tf:
            tf.add(bundle_dir, arcname=bundle_dir.name, recursive=False, filter=clean)
            for p in sorted(bundle_dir.rglob("*")):
                tf.add(p, arcname=f"{bundle_dir.name}/{p.relative_to(bundle_dir).as_posix()}",
                       recursive=False, filter=clean)
    return tar_path
