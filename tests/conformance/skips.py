"""Declared skips of the conformance suite: data, each with its reason (the way ExecuTorch's
test flows declare skip_patterns). A case that cannot run here and matches no entry FAILS:
an undeclared skip is a bug, not a skip.

Each entry: (case pattern "family/target/precision" with fnmatch wildcards, condition, reason).
Conditions: "no-runtime" (the target's runtime is unavailable on this machine: the artifact is
still exported and structure-checked), "unsupported" (the target's quantizer does not offer the
precision at all), "unverified" (not run yet: the case is skipped before export, with the issue
that tracks it; remove the entry once the case has run and its result is recorded).
"""
from __future__ import annotations

from fnmatch import fnmatch

SKIPS: tuple[tuple[str, str, str], ...] = (
    ("*/coreml/*", "no-runtime", "Core ML predict needs macOS (the .mlpackage is exported and structure-checked here)"),
    ("*/tensorrt/*", "no-runtime", "TensorRT needs the tensorrt package and an NVIDIA GPU (the ONNX + engine recipe "
                                   "is exported and structure-checked here)"),
    ("*/tensorrt/int8-weights", "unsupported", "TensorRT has no weight-only INT8 (it quantizes weights and "
                                               "activations together)"),
)


def declared_skip(case: str, condition: str) -> str | None:
    """The reason of the entry declaring `condition` for `case`, or None."""
    for pattern, cond, reason in SKIPS:
        if cond == condition and fnmatch(case, pattern):
            return reason
    return None
