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


@dataclass(frozen=True)
class PipelineSpec:
    """Data, not code: how programs chain into audio -> motion -> frames.

    `kind` picks the driver in edgeth.runtime_py.pipelines (e.g. "motion_diffusion").
    Both the PyTorch reference and every exported backend are driven by the same spec,
    so a device app can reproduce the pipeline from the manifest alone.
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

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["programs"] = list(self.programs)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "PipelineSpec":
        d = dict(d)
        d["programs"] = tuple(d["programs"])
        return cls(**d)
