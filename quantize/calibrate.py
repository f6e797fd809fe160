"""Calibration capture: each program's real inputs, recorded by running the reference pipeline.

The pipeline driver (edgeth.runtime_py.pipelines) is the same host code every backend
runs; wrapping its `call(program, inputs)` records what each program sees in real use:
the renderer real motion codes, the denoiser every timestep of the sampler schedule.
Clips are (portrait image, speech audio) pairs (synthetic by default, or the user's data).

The capture is cached by content hash (program weights + pipeline spec + clip contents +
seed), so a second export of the same checkpoint with the same calibration set reuses it.
Stored as a plain .npz (no pickle) plus a JSON sidecar.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from edgeth.errors import InputError
from edgeth.io_utils import atomic_path, write_json

if TYPE_CHECKING:
    from edgeth.program import PipelineSpec, Program

Clip = tuple[np.ndarray, np.ndarray]  # (image [H,W,3] float32 in [0,1], audio [S] float32 16 kHz)
ProgramCall = Callable[[str, list[np.ndarray]], list[np.ndarray]]


@dataclass
class CalibrationSet:
    """Per program, the input tuples it received, in call order."""

    samples: dict[str, list[tuple[np.ndarray, ...]]] = field(default_factory=dict)
    key: str = ""
    source: dict[str, Any] = field(default_factory=dict)

    def programs(self) -> list[str]:
        return list(self.samples)

    def count(self, program: str) -> int:
        return len(self.samples.get(program, ()))

    def for_program(self, program: str, max_samples: int | None = None) -> tuple[tuple[np.ndarray, ...], ...]:
        """Up to `max_samples` input tuples, evenly spaced over the call order (first and last kept)."""
        s = self.samples.get(program)
        if not s:
            raise InputError(f"calibration set has no inputs for program {program!r}",
                             f"it has: {', '.join(self.samples) or 'nothing'}; re-run the capture with this pipeline")
        if max_samples is None or len(s) <= max_samples:
            return tuple(s)
        idx = np.unique(np.round(np.linspace(0, len(s) - 1, max_samples)).astype(int))
        return tuple(s[i] for i in idx)

    def stats(self, program: str) -> list[dict[str, Any]]:
        """Per input position: shape and value statistics over every recorded call."""
        s = self.samples[program]
        out = []
        for j in range(len(s[0])):
            a = np.stack([np.asarray(x[j], dtype=np.float64) for x in s])
            out.append({"shape": list(s[0][j].shape), "dtype": str(s[0][j].dtype), "mean": float(a.mean()),
                        "std": float(a.std()), "min": float(a.min()), "max": float(a.max()),
                        "distinct": int(len(np.unique(a.reshape(len(s), -1), axis=0)))})
        return out

    def summary(self) -> dict[str, Any]:
        return {"key": self.key, "source": self.source, "calls": {p: len(v) for p, v in self.samples.items()}}

    # -- storage ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        arrays = {f"{p}/{i}/{j}": np.asarray(x) for p, calls in self.samples.items()
                  for i, call in enumerate(calls) for j, x in enumerate(call)}
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        write_json(path.with_suffix(".json"), {"key": self.key, "source": self.source,
                                                "calls": {p: [len(c) for c in v] for p, v in self.samples.items()}})
        return path

    @classmethod
    def load(cls, path: str | Path) -> "CalibrationSet":
        path = Path(path)
        meta_path = path.with_suffix(".json")
        if not path.exists() or not meta_path.exists():
            raise InputError(f"no calibration cache at {path}", "run the capture first")
        meta = json.loads(meta_path.read_text())
        with np.load(path, allow_pickle=False) as z:
            samples = {p: [tuple(z[f"{p}/{i}/{j}"] for j in range(n)) for i, n in enumerate(lens)]
                       for p, lens in meta["calls"].items()}
        return cls(samples, meta.get("key", ""), meta.get("source", {}))


def recording_call(call: ProgramCall, sink: dict[str, list[tuple[np.ndarray, ...]]],
                   programs: Iterable[str] | None = None) -> ProgramCall:
    """Wrap `call` so every program's inputs are copied into `sink[program]`."""
    wanted = set(programs) if programs is not None else None

    def rec(name: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if wanted is None or name in wanted:
            sink.setdefault(name, []).append(tuple(np.array(x, copy=True) for x in inputs))
        return call(name, inputs)

    return rec


def torch_call(programs: Sequence["Program"]) -> ProgramCall:
    """FP32 PyTorch eager `call` over Programs: the runtime's torch backend, the one reference."""
    from edgeth.runtime_py.torch_backend import torch_call as _torch_call

    return _torch_call(list(programs))


def capture(spec: "PipelineSpec", call: ProgramCall, clips: Sequence[Clip], *, seed: int = 0,
            progress: bool = False, driver: Callable[..., Any] | None = None, **options: Any) -> CalibrationSet:
    """Run the pipeline driver over `clips` with a recording `call`; returns every program's inputs."""
    from tqdm import tqdm

    from edgeth.runtime_py.pipelines import SeededNoise, get_pipeline

    if not clips:
        raise InputError("no calibration clips", "pass --calib DIR with clips, or use the synthetic default")
    drive = driver or get_pipeline(spec.kind)
    sink: dict[str, list[tuple[np.ndarray, ...]]] = {}
    rec = recording_call(call, sink)
    for i, (image, audio) in enumerate(tqdm(clips, desc="calibration capture", disable=not progress, leave=False)):
        drive(spec, rec, image=image, audio=audio, noise=SeededNoise(seed + i), progress=False, **options)
    missing = [p for p in spec.programs if p not in sink]
    if missing:
        raise InputError(f"the pipeline never called {', '.join(missing)} during calibration",
                         "check the PipelineSpec's program list against its driver")
    return CalibrationSet(sink, source={"clips": len(clips), "seed": seed, "options": _jsonable(options)})


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (int, float, str, bool, type(None))) else str(v)) for k, v in d.items()}


def weights_digest(programs: Sequence["Program"]) -> str:
    """sha256 over every program's state_dict (names, dtypes, shapes, bytes), in sorted order."""
    import torch

    h = hashlib.sha256()
    for p in sorted(programs, key=lambda p: p.name):
        h.update(p.name.encode())
        sd = p.module.state_dict()
        for k in sorted(sd):
            t = sd[k].detach().cpu().contiguous()
            h.update(f"{k}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update((t.float() if t.dtype == torch.bfloat16 else t).numpy().tobytes())
    return h.hexdigest()


def clips_digest(clips: Sequence[Clip]) -> str:
    h = hashlib.sha256()
    for image, audio in clips:
        for a in (image, audio):
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype}:{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def cache_key(programs: Sequence["Program"], spec: "PipelineSpec", clips: Sequence[Clip], seed: int = 0,
              **options: Any) -> str:
    h = hashlib.sha256()
    for part in (weights_digest(programs), json.dumps(spec.to_json(), sort_keys=True, default=str),
                 clips_digest(clips), str(seed), json.dumps(_jsonable(options), sort_keys=True)):
        h.update(part.encode())
    return h.hexdigest()[:24]


def cached_capture(cache_dir: str | Path | None, programs: Sequence["Program"], spec: "PipelineSpec",
                   clips: Sequence[Clip], *, seed: int = 0, call: ProgramCall | None = None,
                   progress: bool = False, **options: Any) -> CalibrationSet:
    """`capture` with the FP32 PyTorch programs, cached under cache_dir/calib-<key>.npz."""
    key = cache_key(programs, spec, clips, seed, **options)
    path = Path(cache_dir) / f"calib-{key}.npz" if cache_dir else None
    if path is not None and path.exists() and path.with_suffix(".json").exists():
        cs = CalibrationSet.load(path)
        if cs.key == key:
            cs.source = {**cs.source, "cached": True}
            return cs
    cs = capture(spec, call or torch_call(programs), clips, seed=seed, progress=progress, **options)
    cs.key = key
    if path is not None:
        cs.save(path)
    cs.source = {**cs.source, "cached": False}
    return cs
