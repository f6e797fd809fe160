"""ONNX Runtime runner: an InferenceSession on CPUExecutionProvider.

Threads: SessionOptions.intra_op_num_threads (inter-op stays 1: programs are single
graphs). A corrupt or truncated .onnx is a BundleError with ONNX Runtime's reason.

INT8 on x86-64 without VNNI (AVX2, AVX-512 before Cascade Lake, AMD before Zen 4): ONNX
Runtime's fast U8S8 integer GEMM sums pairs of u8*s8 products in a saturating int16
(VPMADDUBSW), so a quantized MatMul/Conv can come out wrong by far more than quantization
error (a CI machine of that kind: a tiny MDCF denoiser's weight-only INT8 at 12 dB SQNR, a
QDQ INT8 one at 7 dB, where a VNNI machine gives 30+ dB). On such a CPU every session edgeth
opens sets `session.x64quantprecision=1` (ONNX Runtime's exact U8U8 kernels; `exact_int8()`
measures whether the CPU needs it), so a verdict does not depend on which x86 CPU ran it.
Elsewhere it is left off: onnxruntime 1.31 applies it on VNNI CPUs too, swapping in the slower
U8U8 kernels for nothing.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from edgeth.errors import BundleError, TargetUnavailable
from edgeth.targets.common import ArrayRunner, artifact_file, entry_specs, first_line

PROVIDERS = ["CPUExecutionProvider"]


@functools.lru_cache(maxsize=1)
def exact_int8() -> bool:
    """Does this CPU need ONNX Runtime's exact INT8 mode? Measured, not guessed from CPU flags:
    a 64-long u8 255 x s8 127 dot product through MatMulInteger under the default options; the
    saturating kernel returns about half the exact 2,072,640."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    k = 64
    w = np.full((k, 1), 127, np.int8)
    g = helper.make_graph([helper.make_node("MatMulInteger", ["a", "w"], ["y"])], "probe",
                          [helper.make_tensor_value_info("a", TensorProto.UINT8, [1, k])],
                          [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 1])], [numpy_helper.from_array(w, "w")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=PROVIDERS)
    (y,) = sess.run(None, {"a": np.full((1, k), 255, np.uint8)})
    return int(y.ravel()[0]) != 255 * 127 * k


def session_options(threads: int | None = None, level: Any = None, exact: bool | None = None) -> Any:
    """The SessionOptions every edgeth ONNX Runtime session uses (threads, no spinning, exact
    INT8 GEMM where the CPU needs it; see the module docstring). `level`: a
    GraphOptimizationLevel; `exact`: force the exact INT8 mode on or off (None: `exact_int8()`)."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise TargetUnavailable(f"onnxruntime cannot load: {e}", "pip install onnxruntime") from None
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    if level is not None:
        so.graph_optimization_level = level
    # no spin-waiting after a run: a pipeline alternates 5 sessions and host numpy on few cores,
    # and idle spinning threads of one session starved the next (end to end 0.200 s -> 0.107 s per 25 frames here)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if exact_int8() if exact is None else exact:
        so.add_session_config_entry("session.x64quantprecision", "1")
    return so


def session(model: Path | bytes, threads: int | None = None, level: Any = None, exact: bool | None = None) -> Any:
    """An InferenceSession on CPUExecutionProvider with `session_options` (model: a path or bytes)."""
    import onnxruntime as ort

    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, sess_options=session_options(threads, level, exact), providers=PROVIDERS)


def make_runner(artifact_dir: Path, entry: dict[str, Any], threads: int | None = None) -> ArrayRunner:
    path = artifact_file(artifact_dir, entry, ".onnx")
    try:
        sess = session(path, threads)
    except TargetUnavailable:
        raise
    except Exception as e:
        raise BundleError(f"cannot load ONNX model {path.name}: {first_line(e)}",
                          "the .onnx is corrupt or truncated; re-export the bundle") from None
    ins, outs = entry_specs(entry)
    in_names = [i.name for i in sess.get_inputs()]
    out_names = [o.name for o in sess.get_outputs()]
    if in_names != [s.name for s in ins] or not {s.name for s in outs} <= set(out_names):
        raise BundleError(f"{path.name} has inputs {in_names} / outputs {out_names}, the manifest lists "
                          f"{[s.name for s in ins]} / {[s.name for s in outs]}", "re-export the bundle")
    wanted = [s.name for s in outs]

    def run(arrays: list) -> list:
        try:
            return sess.run(wanted, dict(zip(in_names, arrays)))
        except Exception as e:
            raise BundleError(f"ONNX Runtime failed to run {path.name}: {first_line(e)}",
                              "the .onnx does not match its manifest entry; re-export the bundle") from None

    return ArrayRunner(entry, run, "onnxruntime")
