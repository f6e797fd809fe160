"""TensorRT runner: deserialize <program>.engine, bind torch CUDA tensors, execute_async_v3.

Reachable only where runtime_available() holds (tensorrt importable + a CUDA GPU). The
engine is built on first use from the recipe (builder.build_from_recipe) when the bundle
folder has none yet, exactly as build_engine.sh would. Inputs are copied host->device,
outputs device->host as numpy arrays in manifest order. `threads` does not apply.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeth.errors import BundleError
from edgeth.targets.common import ArrayRunner, artifact_file, entry_specs


def _torch_dtype(trt, torch, dt):
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32, trt.int8: torch.int8,
             trt.bool: torch.bool}
    if hasattr(trt, "int64"):
        table[trt.int64] = torch.int64
    return table[dt]


def make_runner(artifact_dir: Path, entry: dict[str, Any], threads: int | None = None) -> ArrayRunner:
    import tensorrt as trt
    import torch

    from edgeth.targets.tensorrt.builder import build_from_recipe

    onnx_path = artifact_file(artifact_dir, entry, ".onnx")
    recipe = onnx_path.with_name(onnx_path.stem + ".trt.json")
    engine_path = onnx_path.with_suffix(".engine")
    if not engine_path.exists():
        if not recipe.exists():
            raise BundleError(f"no TensorRT engine or recipe for {onnx_path.stem}", "re-export the bundle")
        build_from_recipe(recipe)
    logger = trt.Logger(trt.Logger.WARNING)
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise BundleError(f"cannot deserialize TensorRT engine {engine_path.name}",
                          "it is corrupt or was built for another GPU/TensorRT version; delete it and rebuild")
    context = engine.create_execution_context()
    ins, outs = entry_specs(entry)
    stream = torch.cuda.Stream()

    def run(arrays: list) -> list:
        with torch.cuda.stream(stream):
            dev_in = [torch.from_numpy(a).to("cuda", non_blocking=False) for a in arrays]
            for spec, t in zip(ins, dev_in):
                context.set_input_shape(spec.name, tuple(t.shape))
                context.set_tensor_address(spec.name, t.data_ptr())
            dev_out = []
            for spec in outs:
                shape = tuple(context.get_tensor_shape(spec.name))
                t = torch.empty(shape, dtype=_torch_dtype(trt, torch, engine.get_tensor_dtype(spec.name)), device="cuda")
                context.set_tensor_address(spec.name, t.data_ptr())
                dev_out.append(t)
            if not context.execute_async_v3(stream.cuda_stream):
                raise BundleError(f"TensorRT failed to run {engine_path.name}", "rebuild the engine on this device")
        stream.synchronize()
        return [t.cpu().numpy() for t in dev_out]

    run.keep = (runtime, engine, context)  # the context needs its engine and runtime alive
    return ArrayRunner(entry, run, "tensorrt")
