"""ONNX Runtime runner: an InferenceSession on CPUExecutionProvider.

Threads: SessionOptions.intra_op_num_threads (inter-op stays 1: programs are single
graphs). A corrupt or truncated .onnx is a BundleError with ONNX Runtime's reason.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeth.errors import BundleError, TargetUnavailable
from edgeth.targets.common import ArrayRunner, artifact_file, entry_specs, first_line

PROVIDERS = ["CPUExecutionProvider"]


def make_runner(artifact_dir: Path, entry: dict[str, Any], threads: int | None = None) -> ArrayRunner:
    path = artifact_file(artifact_dir, entry, ".onnx")
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise TargetUnavailable(f"onnxruntime cannot load: {e}", "pip install onnxruntime") from None
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    # no spin-waiting after a run: a pipeline alternates 5 sessions and host numpy on few cores,
    # and idle spinning threads of one session starved the next (end to end 0.200 s -> 0.107 s per 25 frames here)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        sess = ort.InferenceSession(str(path), sess_options=so, providers=PROVIDERS)
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
