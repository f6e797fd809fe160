"""Where models and targets meet: Program (a deployable nn.Module) and PipelineSpec (data).

Models never import targets; targets never import a model family. Both speak these types.

Shape legend used across edgeth:
  B batch, T frames in a window, C channels, H/W image size, D motion dim (20 for IF-MDM),
  F audio feature dim, M mel bins (80), S audio samples (16 kHz).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch stays a lazy import for `import edgeth`
    import torch


# What an output (or input) means; parity picks metrics and tolerances by kind.
TENSOR_KINDS = ("image", "motion", "features", "noise", "indices", "latent", "audio", "scalar", "tensor")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]  # the example shape
    dtype: str = "float32"  # numpy dtype name
    kind: str = "tensor"  # one of TENSOR_KINDS
    # dynamic dims: index -> (symbol, min, max); empty = fully static
    dynamic: dict[int, tuple[str, int, int]] = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in TENSOR_KINDS:
            raise ValueError(f"TensorSpec {self.name}: kind {self.kind!r} not in {TENSOR_KINDS}")

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["shape"] = list(self.shape)
        d["dynamic"] = {str(k): list(v) for k, v in self.dynamic.items()}
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "TensorSpec":
        return cls(
            name=d["name"],
            shape=tuple(d["shape"]),
            dtype=d.get("dtype", "float32"),
            kind=d.get("kind", "tensor"),
            dynamic={int(k): (v[0], int(v[1]), int(v[2])) for k, v in d.get("dynamic", {}).items()},
        )


@dataclass
class Program:
    """A plain nn.Module with no Python-side state at run time, plus what a target needs.

    `module.forward(*example_inputs)` returns a tensor or a tuple of tensors in the order
    of `outputs`. `float_only` names submodules (dotted paths) that must never be
    quantized (e.g. everything upstream of FSQ rounding).
    """

    name: str
    module: "torch.nn.Module"
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    example_inputs: tuple["torch.Tensor", ...]
    flops: int | None = None  # per call, if known
    float_only: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if len(self.inputs) != len(self.example_inputs):
            raise ValueError(f"program {self.name}: {len(self.inputs)} input specs, {len(self.example_inputs)} examples")

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [s.name for s in self.outputs]

    def signature_json(self) -> dict[str, Any]:
        return {
            "inputs": [s.to_json() for s in self.inputs],
            "outputs": [s.to_json() for s in self.outputs],
            "flops": self.flops,
            "float_only": list(self.float_only),
            "meta": self.meta,
        }


# What a pipeline stage produces (a recorded golden output of the whole pipeline). Verify,
# tolerances, budgets, the mixed search, the report and the bench read kinds from the spec.
STAGE_KINDS = ("frames", "image", "motion", "latent", "indices", "features", "audio", "tensor")
# Budget metrics per stage kind: what `--budget STAGE:METRIC=BOUND` may name.
STAGE_METRICS = {"frames": ("psnr",), "image": ("psnr",), "motion": ("cosine",), "latent": ("cosine",),
                 "features": ("cosine",), "audio": ("cosine",), "tensor": ("cosine",), "indices": ("agreement",)}
OPTION_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


@dataclass(frozen=True)
class OptionSpec:
    """One option a pipeline driver accepts: `edgeth generate/run --opt NAME=VALUE` parse it from here.

    `default` None means "the spec's own value" (e.g. the sampler's steps); bounds are inclusive.
    """

    name: str
    type: str  # int | float | str | bool
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] = ()
    min: float | None = None
    max: float | None = None

    def __post_init__(self):
        if self.type not in OPTION_TYPES:
            raise ValueError(f"option {self.name}: type {self.type!r} not in {tuple(OPTION_TYPES)}")

    def parse(self, value: Any) -> Any:
        """Text or a Python value -> the typed value; InputError naming the option when it is bad."""
        import math

        from edgeth.errors import InputError

        want = f"{self.type}" + (f" in {list(self.choices)}" if self.choices else "") + self._range()
        try:
            if self.type == "bool" and isinstance(value, str):
                low = value.strip().lower()
                if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                v: Any = low in ("1", "true", "yes", "on")
            elif self.type == "int" and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            else:
                v = OPTION_TYPES[self.type](value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise InputError(f"option {self.name}={value!r} is not a valid {self.type}", f"pass {self.name}=<{want}>") from None
        if isinstance(v, float) and not math.isfinite(v):
            raise InputError(f"option {self.name}={value!r} is not finite", f"pass {self.name}=<{want}>")
        if self.choices and v not in self.choices:
            raise InputError(f"option {self.name}={v!r} unknown", f"choose one of: {', '.join(map(str, self.choices))}")
        if (self.min is not None and v < self.min) or (self.max is not None and v > self.max):
            raise InputError(f"option {self.name}={v!r} out of range", f"pass {self.name}=<{want}>")
        return v

    def _range(self) -> str:
        if self.min is None and self.max is None:
            return ""
        lo = "-inf" if self.min is None else f"{self.min:g}"
        hi = "inf" if self.max is None else f"{self.max:g}"
        return f" in [{lo}, {hi}]"

    def describe(self) -> str:
        bits = [self.type + self._range()]
        if self.choices:
            bits.append("one of " + "|".join(map(str, self.choices)))
        if self.default is not None:
            bits.append(f"default {self.default}")
        return f"{self.name} ({', '.join(bits)}): {self.help}"

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["choices"] = list(self.choices)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "OptionSpec":
        d = dict(d)
        d["choices"] = tuple(d.get("choices") or ())
        return cls(**d)


# Pipeline outputs older bundles recorded without declaring a kind (before `stages` existed).
_LEGACY_STAGE_KINDS = {"motion": "motion", "frames": "frames", "tokens": "indices", "indices": "indices",
                       "latent": "latent", "features": "features"}


@dataclass(frozen=True)
class PipelineSpec:
    """Data, not code: how programs chain from portrait + audio to frames.

    `kind` picks the driver in edgeth.runtime_py.pipelines (e.g. "motion_diffusion").
    Both the PyTorch reference and every exported backend are driven by the same spec,
    so a device app can reproduce the pipeline from the manifest alone.

    The typed contract every shared consumer reads (and nothing else):
      stages          pipeline outputs recorded in the golden run, name -> kind (STAGE_KINDS);
                      "frames" (the video) is always a stage of kind "frames"
      io              program wiring: {program: {"inputs": [...], "outputs": [...]}} naming
                      the host values each input reads and each output writes
      roles           driver role -> program name (a driver never hard-codes program names)
      options         the options the driver accepts (OptionSpec), exposed by generate/run
      golden_seconds  length of the golden / calibration clip
    """

    kind: str
    programs: tuple[str, ...]  # in the order they run
    fps: int = 25
    image_size: int = 64
    audio: dict[str, Any] = field(default_factory=dict)  # sample_rate, n_mels, hop, n_fft, ...
    sampler: dict[str, Any] = field(default_factory=dict)  # schedule, train_steps, steps, guidance, eta
    window: dict[str, Any] = field(default_factory=dict)  # length, motion_mean mode, ...
    normalization: dict[str, Any] = field(default_factory=dict)  # image range, motion stats
    extra: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, str] = field(default_factory=dict)
    io: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    options: tuple[OptionSpec, ...] = ()
    golden_seconds: float | None = None

    def __post_init__(self):
        bad = {k: v for k, v in self.stages.items() if v not in STAGE_KINDS}
        if bad:
            raise ValueError(f"pipeline stages {bad}: kinds must be in {STAGE_KINDS}")
        unknown = [p for p in self.io if p not in self.programs]
        if unknown:
            raise ValueError(f"pipeline io names programs not in the pipeline: {unknown}")
        missing = [r for r, p in self.roles.items() if p not in self.programs]
        if missing:
            raise ValueError(f"pipeline roles {missing} name programs not in the pipeline")

    # -- stages ------------------------------------------------------------------------------
    def stage_kind(self, name: str) -> str:
        """The declared kind of a recorded pipeline output ("frames" is always frames)."""
        if name == "frames":
            return "frames"
        if name in self.stages:
            return self.stages[name]
        return _LEGACY_STAGE_KINDS.get(name, "tensor")

    def stage_names(self) -> list[str]:
        """Every stage the pipeline records, the video last."""
        return [s for s in self.stages if s != "frames"] + ["frames"]

    def stages_of_kind(self, *kinds: str) -> list[str]:
        return [s for s in self.stage_names() if self.stage_kind(s) in kinds]

    # -- programs ----------------------------------------------------------------------------
    def program_for(self, role: str, default: str | None = None) -> str | None:
        """The program that plays `role` (e.g. "renderer"); the role's own name in older specs."""
        if role in self.roles:
            return self.roles[role]
        name = default or role
        return name if name in self.programs else None

    def check_programs(self, programs: list["Program"]) -> None:
        """Every program the spec names was built, and its declared io wiring has one name per
        program input and output (the wiring a device app reads from the manifest)."""
        from edgeth.errors import InputError

        built = {p.name: p for p in programs}
        missing = [n for n in self.programs if n not in built]
        if missing:
            raise InputError(f"pipeline names programs the family did not build: {', '.join(missing)}",
                             "this is a model-family bug; report it")
        for name, wiring in self.io.items():
            p = built[name]
            for side, specs in (("inputs", p.inputs), ("outputs", p.outputs)):
                if len(wiring.get(side, [])) != len(specs):
                    raise InputError(f"pipeline io of {name!r} lists {len(wiring.get(side, []))} {side}, the program "
                                     f"has {len(specs)}", "this is a model-family bug: fix its PipelineSpec.io")

    # -- options -----------------------------------------------------------------------------
    def option(self, name: str) -> OptionSpec:
        from edgeth.errors import InputError

        for o in self.options:
            if o.name == name:
                return o
        valid = ", ".join(o.name for o in self.options) or "(none)"
        raise InputError(f"unknown option {name!r} for pipeline {self.kind!r}", f"valid options: {valid}")

    def parse_options(self, given: dict[str, Any] | None) -> dict[str, Any]:
        """Typed driver options from `given` (text or values; None values dropped). Unknown names
        are an InputError naming the valid ones. A spec declaring no options passes values through."""
        given = {k: v for k, v in (given or {}).items() if v is not None}
        if not self.options:
            return given
        return {k: self.option(k).parse(v) for k, v in given.items()}

    def clip_seconds(self) -> float:
        """Length of the golden / calibration clip (the spec's, else one window, at least 1 s)."""
        if self.golden_seconds:
            return float(self.golden_seconds)
        length = int(self.window.get("length", 0) or 0)
        return max(1.0, length / max(self.fps, 1))

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["programs"] = list(self.programs)
        d["options"] = [o.to_json() for o in self.options]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "PipelineSpec":
        d = dict(d)
        d["programs"] = tuple(d["programs"])
        d["options"] = tuple(OptionSpec.from_json(o) for o in d.get("options") or ())
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
