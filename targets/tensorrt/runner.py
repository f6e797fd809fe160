"""TensorRT runner through Polygraphy: EngineFromBytes + TrtRunner (profiles, bindings, dtypes, copies).

Reachable only where runtime_available() holds (tensorrt importable + a CUDA GPU). The engine is
built on first use from the recipe (builder.build_from_recipe) when the bundle folder has none
yet, exactly as build_engine.sh would. An engine whose provenance (<program>.engine.json) does
not match this device's TensorRT version, GPU, L4T release or the bundle's ONNX is refused:
"rebuild on this device: sh build_engine.sh". `threads` does not apply.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeth.errors import BundleError
from edgeth.targets.common import ArrayRunner, artifact_file, entry_specs


def check_provenance(engine_path: Path, onnx_path: Path, here: dict[str, Any]) -> None:
    """BundleError naming every mismatch between the engine's provenance and `here` (device.current_device())."""
    from edgeth.targets.tensorrt import device

    rec_path = device.record_path(engine_path)
    try:
        record = json.loads(rec_path.read_text()) if rec_path.exists() else None
    except ValueError:
        record = None
    why = device.mismatches(record, here, device.sha256(onnx_path))
    if why:
        raise BundleError(f"TensorRT engine {engine_path.name} does not fit this device: {'; '.join(why)}", device.REBUILD)


def make_runner(artifact_dir: Path, entry: dict[str, Any], threads: int | None = None) -> ArrayRunner:
    import tensorrt as trt
    from polygraphy.backend.trt import EngineFromBytes, TrtRunner

    from edgeth.targets.tensorrt import device
    from edgeth.targets.tensorrt.builder import build_from_recipe

    onnx_path = artifact_file(artifact_dir, entry, ".onnx")
    recipe = onnx_path.with_name(onnx_path.stem + ".trt.json")
    engine_path = onnx_path.with_suffix(".engine")
    if not engine_path.exists():
        if not recipe.exists():
            raise BundleError(f"no TensorRT engine or recipe for {onnx_path.stem}", "re-export the bundle")
        build_from_recipe(recipe)
    check_provenance(engine_path, onnx_path, device.current_device(trt.__version__))
    try:
        runner = TrtRunner(EngineFromBytes(engine_path.read_bytes()))
        runner.activate()
    except Exception as e:
        raise BundleError(f"cannot load TensorRT engine {engine_path.name}: {e}", device.REBUILD) from None
    ins, outs = entry_specs(entry)

    def run(arrays: list) -> list:
        got = runner.infer({s.name: a for s, a in zip(ins, arrays)})
        return [got[s.name] for s in outs]

    run.keep = runner  # deactivated when the runner is garbage-collected
    return ArrayRunner(entry, run, "tensorrt")
