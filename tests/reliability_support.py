"""Support for the reliability tests (bad-input corpus, fuzzing, kill -9): shared builders.

- `ifmdm_run(dir)`: a real, untrained IF-MDM `tiny` RUN/ (ifmdm.json + stage safetensors),
  written with the trainer's own checkpoint code: what `edgeth export --ckpt` reads, with no
  training (the cheapest real run a subprocess can export).
- `snapshot(root)` / `changed(before, root)`: every path under a folder with its size and
  mtime, to prove a failed command touched nothing.
- `wav_bytes(...)`: a RIFF/WAVE file as bytes, with a header that may lie.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def ifmdm_run(run_dir: Path, preset: str = "tiny", seed: int = 0) -> Path:
    from edgeth.models import get_model
    from edgeth.models.ifmdm.run import write_run_json
    from edgeth.train.checkpoint import save_weights

    run = get_model("ifmdm").fresh(preset, seed=seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    for stage in ("stage1", "stage2"):
        save_weights(getattr(run.model, stage), run_dir / f"{stage}.safetensors", {"step": 0})
    write_run_json(run_dir, run.cfg, run.audio, run.stats, ["stage1", "stage2"])
    return run_dir


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of everything under root (links not followed; a folder's
    own mtime is ignored: a lock file made and removed beside an output is not a change)."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        is_file = p.is_file() and not p.is_symlink()
        out[p.relative_to(root).as_posix()] = (st.st_size, st.st_mtime_ns) if is_file else (0, 0)
    return out


def changed(before: dict[str, tuple[int, int]], root: Path) -> list[str]:
    """Paths added, removed or modified under root since `before`."""
    after = snapshot(root)
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def wav_bytes(samples: np.ndarray, rate: int = 16000, *, fmt: int = 1, bits: int = 16, channels: int = 1,
              data_bytes: int | None = None) -> bytes:
    """A WAVE file: `samples` as raw bytes; `data_bytes` overrides the size the header claims."""
    raw = np.ascontiguousarray(samples).tobytes()
    n = len(raw) if data_bytes is None else data_bytes
    block = channels * bits // 8
    fmt_chunk = struct.pack("<4sIHHIIHH", b"fmt ", 16, fmt, channels, rate, (rate * block) & 0xFFFFFFFF,
                            block & 0xFFFF, bits)
    body = b"WAVE" + fmt_chunk + struct.pack("<4sI", b"data", n) + raw
    return b"RIFF" + struct.pack("<I", len(body)) + body
