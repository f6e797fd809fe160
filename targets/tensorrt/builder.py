"""Build a TensorRT engine from an edgeth ONNX model with the tensorrt Python API (on the device).

  build_engine(onnx_path, engine_path, precision="fp32", shapes=None, workspace_mb=1024)
  build_from_recipe(recipe_path) -> engine path

`shapes` maps input name -> {"min": [...], "opt": [...], "max": [...]} (the recipe's
"inputs"); an optimization profile is added when any input has min != max. For int8 the
ONNX model must be a QDQ model (explicit quantization): no calibrator is needed.
Equivalent to build_engine.sh / trtexec; used by the runner when no engine exists yet.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeth.errors import EdgethError, TargetUnavailable, UnsupportedOp
from edgeth.io_utils import atomic_path


def _trt():
    try:
        import tensorrt as trt
    except ImportError:
        raise TargetUnavailable("tensorrt is not installed",
                                "pip install edgeth[tensorrt] on a machine with an NVIDIA GPU") from None
    return trt


def build_engine(onnx_path: Path | str, engine_path: Path | str, precision: str = "fp32",
                 shapes: dict[str, dict[str, list[int]]] | None = None, workspace_mb: int = 1024) -> Path:
    trt = _trt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)  # implicit in TensorRT 10
    network = builder.create_network(0 if flag is None else 1 << int(flag))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise UnsupportedOp(f"TensorRT cannot parse {Path(onnx_path).name}: {errors[0] if errors else 'unknown error'}",
                            "run `edgeth export --target tensorrt` preflight to see the module path")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    if precision in ("int8", "mixed"):  # mixed: layers without Q/DQ run FP32, as the budget was measured
        config.set_flag(trt.BuilderFlag.INT8)
    if shapes and any(p["min"] != p["max"] for p in shapes.values()):
        profile = builder.create_optimization_profile()
        for name, p in shapes.items():
            profile.set_shape(name, tuple(p["min"]), tuple(p["opt"]), tuple(p["max"]))
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EdgethError(f"TensorRT failed to build an engine from {Path(onnx_path).name}",
                          "see the TensorRT log above; try precision fp32 or a larger workspace")
    with atomic_path(engine_path) as tmp:
        tmp.write_bytes(bytes(serialized))
    return Path(engine_path)


def build_from_recipe(recipe_path: Path | str) -> Path:
    """Build the engine a <program>.trt.json describes, next to it."""
    from edgeth.targets.tensorrt.exporter import load_recipe

    recipe_path = Path(recipe_path)
    rec: dict[str, Any] = load_recipe(recipe_path)
    shapes = {i["name"]: {k: i[k] for k in ("min", "opt", "max")} for i in rec["inputs"]}
    return build_engine(recipe_path.parent / rec["onnx"], recipe_path.parent / rec["engine"], rec["precision"], shapes)
