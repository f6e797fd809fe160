"""Helpers for the IF-MDM tests (the tiny run itself is ModelFamily.fixture_run, see conftest)."""
from __future__ import annotations

from pathlib import Path


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
