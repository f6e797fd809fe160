"""ExecuTorch runner: load a .pte with executorch.runtime and run method "forward".

Threads: executorch.extension.pybindings.portable_lib._unsafe_reset_threadpool(n) sizes
the process-wide pool XNNPACK uses (it affects every loaded program). The runtime's
C++ start-up lines (cpuinfo, threadpool) are captured at fd level and dropped; other
native lines end up in the error message when loading fails.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeth.errors import BundleError, TargetUnavailable
from edgeth.targets.common import ArrayRunner, artifact_file, first_line, native_stderr


def _runtime(threads: int | None):
    try:
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime
    except ImportError as e:
        raise TargetUnavailable(f"the ExecuTorch runtime cannot load: {e}", "pip install executorch") from None
    if threads:
        portable_lib._unsafe_reset_threadpool(int(threads))
    return Runtime.get()


def check_pte_header(path: Path) -> None:
    """Refuse what is not a whole .pte before the runtime sees it: on some garbage the ExecuTorch
    runtime aborts the process (ET_CHECK) instead of returning an error. A .pte starts with a
    flatbuffer root offset, the file identifier "ET" + 2 digits, and the extended header "eh00"
    (header length u32, program size u64, segment base offset u64), which must fit the file."""
    import struct

    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(32)
    ok = len(head) == 32 and head[4:6] == b"ET" and head[6:8].isdigit() and head[8:12] == b"eh00"
    if ok:
        _, program_size, segment_base = struct.unpack("<IQQ", head[12:32])
        ok = 0 < program_size <= size and segment_base <= size
    if not ok:
        raise BundleError(f"cannot load ExecuTorch program {path.name}: not a whole .pte (bad header or truncated)",
                          "the .pte is corrupt, truncated or from another ExecuTorch version; re-export the bundle")


def load_method(path: Path, threads: int | None = None):
    """(program, method) for a .pte; BundleError with the runtime's reason if it is corrupt."""
    check_pte_header(path)
    err: Exception | None = None
    with native_stderr() as native:
        rt = _runtime(threads)
        try:
            program = rt.load_program(path)
            method = program.load_method("forward")
        except Exception as e:
            err = e
    if err is not None:
        why = native[-1] if native else first_line(err)
        raise BundleError(f"cannot load ExecuTorch program {path.name}: {why}",
                          "the .pte is corrupt, truncated or from another ExecuTorch version; re-export the bundle")
    return program, method


def make_runner(artifact_dir: Path, entry: dict[str, Any], threads: int | None = None) -> ArrayRunner:
    path = artifact_file(artifact_dir, entry, ".pte")
    program, method = load_method(path, threads)

    def run(arrays: list) -> list:
        import torch

        try:
            outs = method.execute([torch.from_numpy(a) for a in arrays])
        except Exception as e:
            raise BundleError(f"ExecuTorch failed to run {path.name}: {first_line(e)}",
                              "the .pte does not match its manifest entry; re-export the bundle") from None
        # outputs live in the method's planned memory and are overwritten by the next call
        return [o.detach().numpy().copy() for o in outs]

    run.program = program  # keep the program alive as long as the runner
    return ArrayRunner(entry, run, "executorch")
