"""Outputs an app dumped on a device, checked against the bundle's golden vectors (the QA workflow).

The app runs each program on the golden inputs (`golden/<program>.npz`, keys `in_<name>`
stacked over N calls: call i is `in_<name>[i]`) and dumps what it got, in either layout:

  DIR/<program>.npz                 keys `out_<name>` stacked [N, ...] over all golden calls,
                                    or `out_<name>_<i>` per call i (0-based);
                                    a single `out_<name>` of the output's own shape is call 0
  DIR/<program>/<i>/<name>.npy      one file per call i and output name

Optionally the whole pipeline replayed with the golden image, audio and noise
(`golden/pipeline.npz`):
  DIR/pipeline.npz                  key `frames` [T,H,W,3] in [0,1], plus any stage the
                                    reference recorded (e.g. `motion`)
  DIR/pipeline/frames.npy, DIR/pipeline/<stage>.npy

Every golden call of every program must be present; missing ones fail the check that lists
them (exit 1). A dump whose shape disagrees with the manifest is bad input (exit 2).
The pipeline dump is optional (reported as skipped when absent).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgeth.errors import InputError
from edgeth.runtime_py.parity import Check
from edgeth.runtime_py.gates import gate1_note
from edgeth.runtime_py.verify import Report, compare_program, compare_stages


def _npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - any unreadable dump is bad input
        raise InputError(f"cannot read {path}: {e}", "dump outputs with numpy.save / numpy.savez") from None


def _npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001
        raise InputError(f"cannot read {path}: {e}", "dump outputs with numpy.save / numpy.savez") from None


def read_program_dump(root: Path, program: str, outputs: list, n_calls: int) -> tuple[list[list | None], list[str]]:
    """([per call: [arrays] or None when incomplete], [missing file/key descriptions])."""
    calls: list[list] = [[None] * len(outputs) for _ in range(n_calls)]
    npz = root / f"{program}.npz"
    if npz.is_file():
        z = _npz(npz)
        _check_keys(npz, z, outputs, n_calls)
        for j, spec in enumerate(outputs):
            key = f"out_{spec.name}"
            if key in z:
                a = z[key]
                if a.ndim == len(spec.shape) and n_calls >= 1:
                    calls[0][j] = a
                else:
                    _check_shape(npz, key, a.shape[1:], spec)
                    for i in range(min(n_calls, a.shape[0])):
                        calls[i][j] = a[i]
            for i in range(n_calls):
                if f"{key}_{i}" in z:
                    calls[i][j] = z[f"{key}_{i}"]
    folder = root / program
    for i in range(n_calls):
        for j, spec in enumerate(outputs):
            f = folder / str(i) / f"{spec.name}.npy"
            if calls[i][j] is None and f.is_file():
                calls[i][j] = _npy(f)
    missing = []
    for i in range(n_calls):
        for j, spec in enumerate(outputs):
            if calls[i][j] is None:
                missing.append(f"{program}/{i}/{spec.name}.npy (or out_{spec.name}_{i} in {program}.npz)")
            else:
                _check_shape(root / program, f"{spec.name} call {i}", calls[i][j].shape, spec)
    return [c if all(x is not None for x in c) else None for c in calls], missing


def _check_keys(npz: Path, z: dict, outputs: list, n_calls: int) -> None:
    """Every array in a dump must be an output the manifest names: anything else is a wrong dump."""
    known = {f"out_{s.name}" for s in outputs} | {f"out_{s.name}_{i}" for s in outputs for i in range(n_calls)}
    extra = sorted(k for k in z if k not in known)
    if extra:
        raise InputError(f"device dump {npz} holds arrays this program does not return: {', '.join(extra[:5])}",
                         f"dump only {', '.join(sorted(f'out_{s.name}' for s in outputs))} (stacked, or _<call>)")


def _check_shape(where: Path, key: str, shape: tuple, spec) -> None:
    from edgeth.runtime_py.backends import describe_shape, shape_ok

    if not shape_ok(spec, tuple(shape)):
        raise InputError(f"device output {where.name}:{key} has shape {tuple(shape)}, the manifest says {describe_shape(spec)}",
                         "dump the output exactly as the program returns it (see `edgeth verify --help`)")


def read_pipeline_dump(root: Path) -> dict[str, np.ndarray] | None:
    if (root / "pipeline.npz").is_file():
        return _npz(root / "pipeline.npz")
    folder = root / "pipeline"
    if folder.is_dir():
        return {p.stem: _npy(p) for p in sorted(folder.glob("*.npy"))}
    return None


def verify_outputs(bundle, outputs_dir: str | Path, target: str | None = None) -> Report:
    """Compare dumped device outputs with the golden vectors (see module docstring).

    `target` names the artifact the app ran: gate 1 compares with its recorded host outputs,
    gate 2 uses its quality bounds; default: the bundle's only target, else gate 2 at fp32.
    """
    from edgeth.bundle.io import Bundle, load_bundle

    t0 = time.perf_counter()
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    root = Path(outputs_dir)
    if not root.is_dir():
        raise InputError(f"outputs folder {root} does not exist", "pass --outputs DIR with the app's dumps")
    if target is None and len(bundle.targets) == 1:
        target = bundle.targets[0]
    rep = Report(str(bundle.source), f"device outputs ({root})")
    note = gate1_note(bundle, target) if target else \
        "note: gate 1 (runtime) not checked: pass --target to compare with that artifact's own host outputs"
    rep.notes += [note] if note else []
    missing_all: list[str] = []
    found_any = False
    for name in bundle.program_names:
        golden = bundle.golden_calls(name)
        _, outs = bundle.specs(name)
        got, missing = read_program_dump(root, name, outs, len(golden))
        missing_all += missing
        if any(c is not None for c in got):
            found_any = True
            rep.checks += compare_program(bundle, name, target, got, golden)
    pipe = read_pipeline_dump(root)
    if pipe is None:
        rep.checks.append(Check("quality/pipeline/frames", {}, True, "skipped: no pipeline.npz or pipeline/frames.npy",
                                skipped=True))
    else:
        found_any = True
        if "frames" not in pipe:
            missing_all.append("pipeline.npz key 'frames' (or pipeline/frames.npy)")
        rep.checks += compare_stages(bundle, target, pipe.get("frames"), {k: v for k, v in pipe.items() if k != "frames"})
    if not found_any:
        first = bundle.specs(bundle.program_names[0])[1][0].name
        raise InputError(f"{root} holds no outputs named after this bundle's programs ({', '.join(bundle.program_names)})",
                         f"dump e.g. {bundle.program_names[0]}.npz with key out_{first} (see `edgeth verify --help`)")
    if missing_all:
        rep.checks.append(Check("outputs/missing", {"missing": len(missing_all)}, False,
                                "missing: " + "; ".join(missing_all[:12]) + (" ..." if len(missing_all) > 12 else ""),
                                detail={"missing": missing_all}))
    rep.seconds = time.perf_counter() - t0
    return rep
