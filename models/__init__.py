"""Model families (installed as edgeth.models). The only place that knows a paper.

A family is registered with @register_model("name") and implements ModelFamily.
Lookups go through get_model(name); an unknown name lists what exists.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeth.registry import Registry

# Families shipped with edgeth, imported on first lookup (keeps `import edgeth` light). A new
# family is its folder plus one line here.
MODELS: Registry["ModelFamily"] = Registry("model", builtins=(
    "edgeth.models.ifmdm",
    "edgeth.models.vqtalker",
    "edgeth.models.mdcf",
))


def register_model(name: str):
    """Class decorator: registers an *instance* of the family under `name`."""

    def deco(cls):
        inst = cls()
        inst.name = name
        MODELS.add(name, inst)
        return cls

    return deco


def get_model(name: str) -> "ModelFamily":
    return MODELS.get(name)


def model_names() -> list[str]:
    return MODELS.names()


class ModelFamily:
    """What every family provides; shared code calls nothing else. `run` is a loaded checkpoint
    (family-defined object).

    The RUN/ contract: a folder holding `<family>.json` (a JSON object whose "family" names the
    registered family, plus "preset") and safetensors weights. `resolve_run(run_dir)` is the one
    resolver every command uses.

    The conformance suite (tests/conformance) runs every registered family: `fixture_run` must
    produce its tiny run, or the suite fails for that family.
    """

    name: str = ""
    presets: tuple[str, ...] = ("tiny", "mobile", "paper")
    description: str = ""
    # family-specific `edgeth train` flags its train() accepts as keywords (e.g. "phase", "no_igc")
    train_flags: tuple[str, ...] = ()

    # -- configuration --------------------------------------------------------------------
    def config(self, preset: str = "tiny") -> Any:
        """The frozen config dataclass of a named preset."""
        raise NotImplementedError

    def options(self) -> tuple["OptionSpec", ...]:  # noqa: F821
        """The options its pipeline driver accepts (listed by `generate/run --help`)."""
        return ()

    # -- training -------------------------------------------------------------------------
    def train(self, data_dir: Path, out: Path, *, preset: str = "tiny", stage: int | None = None,
              max_steps: int | None = None, device: str | None = None, seed: int = 0,
              resume: bool = True, **kw: Any) -> Path:
        raise NotImplementedError

    # -- loading --------------------------------------------------------------------------
    def load(self, run_dir: Path, device: str = "cpu") -> Any:
        """Load a RUN/ directory (safetensors weights + config JSON). Never unpickles."""
        raise NotImplementedError

    def fresh(self, preset: str = "tiny", seed: int = 0) -> Any:
        """An untrained run of a preset (FLOP counts, build checks, export dry runs)."""
        raise NotImplementedError

    def reference_files(self, run_dir: Path) -> list[Path]:
        """The files under RUN/ that rebuild the programs (copied into a bundle's reference/):
        by default every *.json and *.safetensors except hidden folders, optimizer state and
        `*.raw.safetensors` pre-EMA weights."""
        run_dir = Path(run_dir)
        return sorted(p for p in run_dir.rglob("*") if p.is_file() and p.suffix in (".json", ".safetensors")
                      and not any(part.startswith(".") for part in p.relative_to(run_dir).parts)
                      and "optim" not in p.name.lower() and ".raw." not in p.name)

    # -- deployment -----------------------------------------------------------------------
    def programs(self, run: Any) -> list["Program"]:  # noqa: F821
        """The deployable pieces, each with example inputs and shape specs."""
        raise NotImplementedError

    def pipeline(self, run: Any) -> "PipelineSpec":  # noqa: F821
        """How the programs chain (data); drives both reference and exported backends."""
        raise NotImplementedError

    # -- tests ----------------------------------------------------------------------------
    def fixture_run(self, out: Path, corpus: Path) -> Path:
        """The tiny run the shared conformance suite exports: trained briefly (about a minute
        of CPU) on `corpus`, a small synthetic corpus (edgeth.data.synth), written to `out`."""
        raise NotImplementedError(f"model family {self.name!r} has no fixture_run (the conformance suite needs one)")


def family_json(run_dir: Path) -> tuple[str, dict[str, Any]] | None:
    """(family name, its run JSON) of a RUN/ folder: `<family>.json` for a registered family,
    else the first config JSON naming a "family" (config.json / run.json / *.json)."""
    import json

    from edgeth.errors import InputError

    run_dir = Path(run_dir)
    named = [run_dir / f"{n}.json" for n in model_names()] + [run_dir / "config.json", run_dir / "run.json"]
    named = [p for p in named if p.is_file()]
    others = sorted(p for p in run_dir.glob("*.json") if p not in named)
    for f in named + others:
        try:
            d = json.loads(f.read_text())
        except (OSError, ValueError) as e:
            if f in named:
                raise InputError(f"{f} is not valid JSON ({e})",
                                 "point --ckpt at a RUN/ folder written by `edgeth train`") from None
            continue
        if not isinstance(d, dict):
            continue
        fam = d.get("family") or d.get("model") or d.get("model_family")
        if isinstance(fam, dict):
            fam = fam.get("name")
        if isinstance(fam, str) and fam:
            return fam, d
    return None


def resolve_run(run_dir: str | Path, model: str | None = None) -> "ModelFamily":
    """The registered ModelFamily of a RUN/ folder (`model` overrides what the run says)."""
    from edgeth.errors import InputError

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"checkpoint folder {run_dir} does not exist",
                         "pass --ckpt RUN/ (the --out folder of `edgeth train`)")
    if model:
        return get_model(model)
    found = family_json(run_dir)
    if found is None:
        raise InputError(f"{run_dir} is not a training run (no <family>.json naming its family)",
                         f"pass the --out folder of `edgeth train FAMILY`, or --model, one of: {', '.join(model_names())}")
    return get_model(found[0])
