"""Measure the face framing of the synthetic corpus: where a detector's face box sits in a clip.

Renders neutral portraits of many sampled identities (edgeth.data.render), runs the face
detector on each, and takes the per-coordinate median of the detected boxes as fractions
of the frame. The result is runtime_py.face.DEFAULT_FRAMING (recorded in every run config
and bundle): inference crops a real photo so its face box lands at the same place.

    python -m edgeth.data.framing  # prints the measurement

Shape legend: N identities, size the render side in pixels.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def measure_framing(identities: int = 300, size: int = 256, detector: Any = "haar", seed: int = 0) -> dict[str, Any]:
    """-> {"center_x", "center_y", "size" (medians), "sd": [...], "detected": n, "identities": N}."""
    from edgeth.data.render import neutral_motion, render_frames, sample_identity
    from edgeth.runtime_py.face_detect import get_detector

    det = get_detector(detector) if isinstance(detector, str) else detector
    rows = []
    for i in range(identities):
        ident = sample_identity(np.random.default_rng([seed, i]))
        img = render_frames(ident, neutral_motion(1), size)[0]
        boxes = det.detect(img)
        if boxes:
            b = boxes[0]
            rows.append([(b.x + b.w / 2) / size, (b.y + b.h / 2) / size, max(b.w, b.h) / size])
    if not rows:
        return {"detected": 0, "identities": identities}
    a = np.array(rows)
    med = np.median(a, axis=0)
    return {"center_x": round(float(med[0]), 3), "center_y": round(float(med[1]), 3), "size": round(float(med[2]), 3),
            "sd": [round(float(v), 3) for v in a.std(axis=0)], "detected": len(rows), "identities": identities}


if __name__ == "__main__":
    print(measure_framing())
