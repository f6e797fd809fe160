"""Per-op time shares of an ExecuTorch program (ETDump + devtools Inspector): where a
program's time goes, which ops XNNPACK runs and which fall back to portable kernels.

  python benchmarks/et_profile.py BUNDLE/executorch/renderer.pte [--runs 5] [--inputs golden.npz]

Used by benchmarks/realtime.py on every ExecuTorch program it measures. Shares are of the
summed per-op times over `runs` calls with the bundle's golden inputs (or zeros); a delegated
XNNPACK block shows as its delegate call plus the ops it holds.
"""
from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path
from typing import Any


def op_profile(pte: Path, inputs: list, runs: int = 5, threads: int | None = None, top: int = 8) -> dict[str, Any]:
    """{"ops": [(name, share, delegated)], "delegated_share", "portable_ops"} of `pte` on `inputs`."""
    import torch
    from executorch.devtools import Inspector
    from executorch.extension.pybindings import portable_lib
    from executorch.runtime import Runtime

    from edgeth.targets.common import native_stderr

    with native_stderr():
        if threads:
            portable_lib._unsafe_reset_threadpool(int(threads))
        prog = Runtime.get().load_program(Path(pte), enable_etdump=True, debug_buffer_size=0)
        method = prog.load_method("forward")
    xs = [torch.from_numpy(a) for a in inputs]
    for _ in range(runs):
        method.execute(xs)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "run.etdp"
        prog.write_etdump_result_to_file(str(path), str(Path(d) / "debug.bin"))
        df = Inspector(etdump_path=str(path)).to_dataframe()
    df = df[df["event_block_name"] == "Execute"] if "event_block_name" in df else df
    # OPERATOR_CALL wraps each native_call_* (same time): count the native call only
    df = df[~df["event_name"].isin(["Method::execute", "Program::load_method", "OPERATOR_CALL"])]
    times: dict[tuple[str, bool], float] = {}
    for _, r in df.iterrows():
        raw = r.get("raw") or []
        key = (re.sub(r" #\d+$", "", str(r["event_name"])), bool(r.get("is_delegated_op")))  # XNNPACK ops by kind
        times[key] = times.get(key, 0.0) + float(sum(raw))
    # a delegate call's own time already holds the ops it ran: count delegated ops only inside it
    total = sum(t for (n, d), t in times.items() if not d) or 1.0
    ops = sorted(((n, t / total, d) for (n, d), t in times.items()), key=lambda x: -x[1])
    portable = sorted({n.replace("native_call_", "") for (n, d) in times if not d and n.startswith("native_call")})
    deleg = sum(t for (n, d), t in times.items() if not d and "DELEGATE" in n.upper()) / total
    return {"ops": [(n, round(s, 4), d) for n, s, d in ops[:top]], "delegated_share": round(deleg, 4),
            "portable_ops": portable}


def _input_keys(pte: Path, files: list[str]) -> list[str]:
    """The golden file's in_<name> keys in the program's input order: the bundle manifest's
    (BUNDLE/executorch/<program>.pte) when there is one, else the file's own order."""
    import json

    manifest = pte.resolve().parent.parent / "manifest.json"
    if manifest.is_file():
        progs = {p["name"]: p for p in json.loads(manifest.read_text())["programs"]}
        if pte.stem in progs:
            return [f"in_{s['name']}" for s in progs[pte.stem]["inputs"]]
    return [k for k in files if k.startswith("in_")]


def main(argv=None) -> int:
    import numpy as np

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pte", type=Path)
    ap.add_argument("--inputs", type=Path, help="a golden .npz (in_<name> arrays, first call used)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    z = np.load(a.inputs)
    inputs = [z[k][0] for k in _input_keys(a.pte, z.files)]
    prof = op_profile(a.pte, inputs, a.runs, a.threads, top=20)
    print(f"delegated (XNNPACK) share: {prof['delegated_share']:.0%}; portable kernels: {', '.join(prof['portable_ops']) or '-'}")
    for n, s, d in prof["ops"]:
        print(f"{s:7.1%}  {'  (in delegate) ' if d else ''}{n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
