"""Helpers for the IF-MDM tests: the briefly trained tiny run behind the `ifmdm_tiny_run` fixture."""
from __future__ import annotations

import time
from pathlib import Path

# Short CPU budget (~90 s on 2 cores): enough for losses to fall and reconstruction to improve.
STAGE1_STEPS = 240
STAGE2_STEPS = 300


def corpus_root(synth_corpus) -> Path:
    """The corpus fixture may be a path or a dict/object holding one."""
    if isinstance(synth_corpus, (str, Path)):
        return Path(synth_corpus)
    if isinstance(synth_corpus, dict):
        for k in ("root", "path", "dir", "data"):
            if k in synth_corpus:
                return Path(synth_corpus[k])
    for k in ("root", "path"):
        if hasattr(synth_corpus, k):
            return Path(getattr(synth_corpus, k))
    raise TypeError(f"cannot find the corpus folder in {synth_corpus!r}")


def train_tiny_run(synth_corpus, out: Path, stage1_steps: int = STAGE1_STEPS, stage2_steps: int = STAGE2_STEPS) -> Path:
    import torch

    from edgeth.models import get_model

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    get_model("ifmdm").train(corpus_root(synth_corpus), out, preset="tiny", device="cpu", seed=0, progress=False,
                             overrides={"stage1_steps": stage1_steps, "stage2_steps": stage2_steps})
    (Path(out) / "fixture_train_seconds.txt").write_text(f"{time.perf_counter() - t0:.1f}\n")
    return Path(out)
