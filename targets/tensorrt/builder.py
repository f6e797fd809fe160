"""Build a TensorRT engine from an edgeth recipe with Polygraphy's TensorRT loaders (on the device).

Follows build_engine.sh / trtexec flag for flag (device.trtexec_args), so both paths build the same
engine and write the same provenance record beside it (builder "python" instead of "trtexec"):

  build_from_recipe(recipe_path, dla_core=None, workspace_mb=None, timing_cache=None) -> engine path

Polygraphy does the parsing (NetworkFromOnnxPath), FP32 pins (SetLayerPrecisions + precision
constraints "obey"), the optimization profile (Profile min/opt/max per input), the workspace
(memory_pool_limits), the timing cache (load + save) and DLA with GPU fallback (CreateConfig
use_dla/allow_gpu_fallback). Polygraphy always selects DLA core 0, so the core is set on the
config it returns. TF32 stays off (Polygraphy's default, trtexec --noTF32). For int8 the ONNX is
a QDQ model (explicit quantization): no calibrator is needed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeth.errors import EdgethError, TargetUnavailable, UnsupportedOp
from edgeth.io_utils import atomic_path
from edgeth.targets.common import first_line


def _trt():
    try:
        import tensorrt as trt
    except ImportError:
        raise TargetUnavailable("tensorrt is not installed",
                                "pip install edgeth[tensorrt] on a machine with an NVIDIA GPU") from None
    return trt


def _config(trt, rec: dict[str, Any], opts: dict[str, Any], folder: Path):
    from polygraphy.backend.trt import CreateConfig, Profile

    profiles = []
    if any(i["min"] != i["max"] for i in rec["inputs"]):
        prof = Profile()
        for i in rec["inputs"]:
            prof.add(i["name"], min=i["min"], opt=i["opt"], max=i["max"])
        profiles = [prof]
    cache = folder / opts["timing_cache"] if opts.get("timing_cache") else None
    dla = opts.get("dla_core")
    return CreateConfig(
        fp16="--fp16" in rec["flags"], int8="--int8" in rec["flags"], tf32=False, profiles=profiles or None,
        precision_constraints="obey" if rec.get("layer_precisions") else None,
        load_timing_cache=str(cache) if cache is not None and cache.exists() else None,
        memory_pool_limits={trt.MemoryPoolType.WORKSPACE: int(opts["workspace_mb"]) << 20} if opts.get("workspace_mb") else None,
        use_dla=dla is not None, allow_gpu_fallback=dla is not None,
    ), cache, dla


def build_from_recipe(recipe_path: Path | str, dla_core: int | None = None, workspace_mb: int | None = None,
                      timing_cache: str | None = None) -> Path:
    """Build the engine a <program>.trt.json describes, next to it, plus <engine>.json provenance."""
    trt = _trt()
    from polygraphy.backend.trt import EngineBytesFromNetwork, NetworkFromOnnxPath, SetLayerPrecisions

    from edgeth.targets.tensorrt import device
    from edgeth.targets.tensorrt.exporter import load_recipe

    recipe_path = Path(recipe_path)
    folder = recipe_path.parent
    rec = load_recipe(recipe_path)
    opts = device.builder_options(rec, dla_core=dla_core, workspace_mb=workspace_mb, timing_cache=timing_cache)
    network = NetworkFromOnnxPath(str(folder / rec["onnx"]))
    if rec.get("layer_precisions"):
        network = SetLayerPrecisions(network, {n: trt.float32 for n in rec["layer_precisions"]})
    try:
        builder, net, parser = network()
    except Exception as e:  # Polygraphy raises on parser errors, with TensorRT's message
        raise UnsupportedOp(f"TensorRT cannot parse {rec['onnx']}: {first_line(e)}",
                            "run `edgeth lint BUNDLE --target tensorrt` to see the node and module") from None
    make_config, cache, dla = _config(trt, rec, opts, folder)
    config = make_config(builder, net)
    if dla is not None:
        config.DLA_core = int(dla)  # Polygraphy's CreateConfig always picks core 0
    try:
        data = EngineBytesFromNetwork((builder, net, parser), config=config,
                                      save_timing_cache=str(cache) if cache is not None else None)()
    except Exception as e:
        raise EdgethError(f"TensorRT failed to build an engine from {rec['onnx']}: {first_line(e)}",
                          "see the TensorRT log above; try precision fp32 or a larger --workspace") from None
    engine_path = folder / rec["engine"]
    with atomic_path(engine_path) as tmp:
        tmp.write_bytes(bytes(data))
    device.write_record(device.make_record(rec, folder, device.current_device(trt.__version__), "python", opts),
                        engine_path)
    return engine_path
