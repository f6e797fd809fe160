"""ExecuTorch quantization hook (filled by the quantization work).

Stage: between torch.export and XNNPACK lowering (see exporter.py). `apply` receives the
FP32 ExportedProgram and must return an ExportedProgram ready for
to_edge_transform_and_lower, e.g. torchao PT2E: prepare_pt2e(ep.module(), XNNPACKQuantizer
with set_global(per-channel symmetric) + a filter for plan.float_layers / program.float_only),
calibrate on plan.calibration, convert_pt2e, torch.export.export again.
"""
from __future__ import annotations

from typing import Any

from edgeth.errors import EdgethError


def apply(program: Any, ep: Any, plan: Any) -> Any:
    precision = getattr(plan, "precision", "fp32")
    if precision == "fp32":
        return ep
    raise EdgethError(f"precision {precision} for target executorch arrives with the quantization work",
                      "export with --precision fp32 for now")
