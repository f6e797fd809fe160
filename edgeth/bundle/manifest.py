"""The bundle manifest (`manifest.json`): schema, version policy and validation.

Format version 1. Top-level fields:
  format            "edgeth-bundle"
  format_version    1; a loader refuses a bundle from a newer format with a message that says so
  created           {"at": ISO-8601 UTC time, "seconds": {export step: wall time},
                     "quantization": {path: measured time}}: the only field that differs
                    between two exports of the same checkpoint
  producer          {"edgeth": version, "tools": {package: version}} (torch, executorch, onnx, ...)
  model             {"family", "preset", "checkpoint_sha256", "reference": [bundle paths]}
  precision         the precision asked for at export ("fp32", ...)
  targets           {target: {"precision", "tolerances": {"frames": {...}, <stage>: {...}},
                              "verified_at_export": bool (False: its runtime was absent, e.g. Core ML on Linux),
                              "simulated_at_export": backend that ran it instead (coreml-sim), if any,
                              "not_simulated": {program: why the simulator could not run it}}}
  programs          [{"name", "inputs": [TensorSpec], "outputs": [TensorSpec], "flops",
                      "float_only", "meta",
                      "golden": {"file", "calls", "calls_total"},
                      "artifacts": {target: {"files": [paths relative to BUNDLE/<target>/],
                                             "precision", "quantization", "report",
                                             "preflight": [issues], "tolerances": {output: {...}},
                                             "export_parity": {output: metrics},
                                             "expected": {"file", "calls", "source"?: simulator}}}}]
  pipeline          PipelineSpec.to_json(): kind, programs in order, sampler, window,
                    audio frontend, fps, image size, normalization
  golden            {"file": "golden/pipeline.npz", "seed", "options", "noise": [names],
                     "extras": [names], "frames": shape}
  tolerances        the whole table of edgeth/tolerances.py at export time
  files             {bundle-relative path: sha256} for every file except manifest.json
"""
from __future__ import annotations

from typing import Any

from edgeth.errors import BundleError

FORMAT = "edgeth-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

# tools whose versions are recorded (those installed)
TOOLS = ("torch", "executorch", "torchao", "onnx", "onnxruntime", "onnxscript", "coremltools",
         "tensorrt", "nncf", "numpy", "safetensors")

# key -> expected type(s), for each level of the schema
_TOP = {"format": str, "format_version": int, "created": dict, "producer": dict, "model": dict,
        "precision": str, "targets": dict, "programs": list, "pipeline": dict, "golden": dict,
        "tolerances": dict, "files": dict}
_MODEL = {"family": str, "preset": (str, type(None)), "checkpoint_sha256": str, "reference": list}
_PROGRAM = {"name": str, "inputs": list, "outputs": list, "golden": dict, "artifacts": dict}
_PROGRAM_GOLDEN = {"file": str, "calls": int}
_ARTIFACT = {"files": list, "precision": str, "report": dict, "tolerances": dict}
_PIPE_GOLDEN = {"file": str, "seed": int, "options": dict, "noise": list}
_PIPELINE = {"kind": str, "programs": list, "fps": (int, float)}
_TENSOR = {"name": str, "shape": list, "dtype": str}
_MALFORMED = (TypeError, KeyError, ValueError, AttributeError, IndexError)


def tool_versions() -> dict[str, str]:
    """Installed versions of the tools that shape an export (read from metadata, no imports)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in TOOLS:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _need(d: Any, keys: dict[str, Any], where: str) -> None:
    if not isinstance(d, dict):
        raise BundleError(f"manifest {where} is not an object", "re-export the bundle")
    for k, t in keys.items():
        if k not in d:
            raise BundleError(f"manifest {where} lacks {k!r}", "re-export the bundle")
        if not isinstance(d[k], t) or (t is int and isinstance(d[k], bool)):
            raise BundleError(f"manifest {where}.{k} has the wrong type ({type(d[k]).__name__})", "re-export the bundle")


def check_version(d: Any) -> None:
    """Refuse foreign files and bundles written by a newer format version."""
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise BundleError("not an edgeth bundle manifest (format field missing or wrong)",
                          "point at a folder or .tar written by `edgeth export`")
    v = d.get("format_version")
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise BundleError(f"bundle format_version {v!r} is invalid", "re-export the bundle")
    if v > FORMAT_VERSION:
        raise BundleError(
            f"bundle format version {v} is newer than this edgeth supports (version {FORMAT_VERSION})",
            "upgrade edgeth to read it, or re-export the bundle with this edgeth")


def validate(d: Any) -> None:
    """Check the manifest's schema and internal references; raise BundleError on the first problem."""
    from edgeth.program import PipelineSpec, TensorSpec

    check_version(d)
    _need(d, _TOP, "top level")
    _need(d["created"], {"at": str}, "created")
    _need(d["model"], _MODEL, "model")
    _need(d["golden"], _PIPE_GOLDEN, "golden")
    files = d["files"]
    if not all(isinstance(k, str) and isinstance(v, str) and len(v) == 64 for k, v in files.items()):
        raise BundleError("manifest files table is malformed", "re-export the bundle")
    for rel in files:
        if rel.startswith("/") or ".." in rel.split("/"):
            raise BundleError(f"manifest lists a path outside the bundle: {rel!r}", "re-export the bundle")
    _need(d["pipeline"], _PIPELINE, "pipeline")
    _strings(d["pipeline"]["programs"], "pipeline.programs")
    if not d["pipeline"]["fps"] > 0:
        raise BundleError(f"manifest pipeline.fps is {d['pipeline']['fps']!r}", "re-export the bundle")
    _strings(d["model"]["reference"], "model.reference")
    _strings(d["golden"]["noise"], "golden.noise")
    for tg, rec in d["targets"].items():
        _need(rec, {"precision": str}, f"targets.{tg}")
    for prec, row in d["tolerances"].items():
        _need(row, {}, f"tolerances.{prec}")
    try:
        spec = PipelineSpec.from_json(d["pipeline"])
    except _MALFORMED as e:
        raise BundleError(f"manifest pipeline is malformed: {e}", "re-export the bundle") from None
    names = []
    for i, p in enumerate(d["programs"]):
        _need(p, _PROGRAM, f"programs[{i}]")
        where = f"program {p['name']!r}"
        names.append(p["name"])
        try:
            for s in p["inputs"] + p["outputs"]:
                _need(s, _TENSOR, f"{where} tensor spec")
                if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in s["shape"]):
                    raise BundleError(f"manifest {where} has a tensor shape that is not a list of sizes",
                                      "re-export the bundle")
                TensorSpec.from_json(s)
        except _MALFORMED as e:
            raise BundleError(f"manifest {where} has a malformed tensor spec: {e}", "re-export the bundle") from None
        _need(p["golden"], _PROGRAM_GOLDEN, f"{where} golden")
        _need_file(files, p["golden"]["file"], where)
        if p["name"] in names[:-1]:
            raise BundleError(f"manifest lists program {p['name']!r} twice", "re-export the bundle")
        for target, art in p["artifacts"].items():
            _need(art, _ARTIFACT, f"{where} artifacts.{target}")
            _strings(art["files"], f"{where} artifacts.{target}.files")
            for out, tol in art["tolerances"].items():
                _need(tol, {}, f"{where} artifacts.{target}.tolerances.{out}")
            if target not in d["targets"]:
                raise BundleError(f"manifest {where} has artifacts for {target!r}, not listed in targets",
                                  "re-export the bundle")
            for f in art["files"]:
                _need_file(files, f"{target}/{f}", where)
    missing = [n for n in spec.programs if n not in names]
    if missing:
        raise BundleError(f"manifest pipeline names programs with no record: {', '.join(missing)}",
                          "re-export the bundle")
    _need_file(files, d["golden"]["file"], "golden")
    for rel in d["model"]["reference"]:
        _need_file(files, rel, "model reference")


def _strings(v: Any, where: str) -> None:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise BundleError(f"manifest {where} is not a list of names", "re-export the bundle")


def _need_file(files: dict[str, str], rel: str, where: str) -> None:
    """A file, or a folder (e.g. a .mlpackage) whose contents are listed."""
    if rel in files or any(k.startswith(rel.rstrip("/") + "/") for k in files):
        return
    raise BundleError(f"manifest {where} names {rel!r}, which has no hash entry", "re-export the bundle")


def comparable(d: dict[str, Any]) -> dict[str, Any]:
    """The manifest without its timestamp: equal for two exports of one checkpoint."""
    return {k: v for k, v in d.items() if k != "created"}
