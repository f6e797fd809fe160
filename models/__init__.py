"""Model families (installed as edgeth.models). The only place that knows a paper.

A family is registered with @register_model("name") and implements ModelFamily.
Lookups go through get_model(name); an unknown name lists what exists.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from edgeth.registry import Registry

MODELS: Registry["ModelFamily"] = Registry("model")

# Families shipped with edgeth, imported on first lookup (keeps `import edgeth` light).
_BUILTIN = ("edgeth.models.ifmdm",)


def register_model(name: str):
    """Class decorator: registers an *instance* of the family under `name`."""

    def deco(cls):
        inst = cls()
        inst.name = name
        MODELS.add(name, inst)
        return cls

    return deco


def _load_builtins() -> None:
    for mod in _BUILTIN:
        importlib.import_module(mod)


def get_model(name: str) -> "ModelFamily":
    _load_builtins()
    return MODELS.get(name)


def model_names() -> list[str]:
    _load_builtins()
    return MODELS.names()


class ModelFamily:
    """What every family provides. `run` is a loaded checkpoint (family-defined object)."""

    name: str = ""
    presets: tuple[str, ...] = ("tiny", "mobile", "paper")

    # -- training -------------------------------------------------------------------------
    def train(self, data_dir: Path, out: Path, *, preset: str = "tiny", stage: int | None = None,
              max_steps: int | None = None, device: str | None = None, seed: int = 0,
              resume: bool = True, **kw: Any) -> Path:
        raise NotImplementedError

    # -- loading --------------------------------------------------------------------------
    def load(self, run_dir: Path, device: str = "cpu") -> Any:
        """Load a RUN/ directory (safetensors weights + config JSON). Never unpickles."""
        raise NotImplementedError

    # -- deployment -----------------------------------------------------------------------
    def programs(self, run: Any) -> list["Program"]:  # noqa: F821
        """The deployable pieces, each with example inputs and shape specs."""
        raise NotImplementedError

    def pipeline(self, run: Any) -> "PipelineSpec":  # noqa: F821
        """How the programs chain (data); drives both reference and exported backends."""
        raise NotImplementedError
