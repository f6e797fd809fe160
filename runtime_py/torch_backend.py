"""The "torch" backend: a ProgramCall that runs Programs' nn.Modules eagerly (eval, no grad).

`edgeth generate` (the PyTorch reference) and the runtime's "torch" backend both drive the
pipeline through this adapter, so the reference and every exported backend share the same
host code (edgeth.runtime_py.pipelines) and differ only in who executes the programs.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from edgeth.errors import EdgethError
from edgeth.runtime_py.pipelines import ProgramCall


def torch_call(programs: "dict[str, object] | Iterable[object]", device: str = "cpu", threads: int | None = None) -> ProgramCall:
    """programs: {name: Program} or a list of Programs -> call(name, [np arrays]) -> [np arrays]."""
    import torch

    if not isinstance(programs, dict):
        programs = {p.name: p for p in programs}
    modules = {name: p.module.to(device).eval() for name, p in programs.items()}
    if threads:
        torch.set_num_threads(int(threads))

    def call(name: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if name not in modules:
            raise EdgethError(f"no program named {name!r}", f"programs: {', '.join(sorted(modules))}")
        xs = [torch.from_numpy(np.ascontiguousarray(x)).to(device) for x in inputs]
        with torch.inference_mode():
            out = modules[name](*xs)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        # float outputs as float32; integer outputs (indices) keep their dtype
        return [(o.detach().float() if o.is_floating_point() else o.detach()).cpu().numpy() for o in outs]

    return call
