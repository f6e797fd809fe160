"""Face detectors behind one small interface, and the registry an app adds its own to.

Follows what every talking-head tool does before its model runs (LivePortrait, SadTalker,
Ditto, MuseTalk): find the face, then crop to the framing the model was trained on
(edgeth.runtime_py.face). The default detector is OpenCV's frontal-face Haar cascade,
whose weights ship inside the `opencv-python-headless` 4.x wheel (`cv2/data/`): nothing is
downloaded at run time. An app registers its own:

    from edgeth.runtime_py.face_detect import register_detector

    @register_detector("mine")
    class MyDetector:
        def detect(self, image):  # uint8 [H, W, 3] RGB -> [Box, ...], best first
            ...

Box convention: a roughly square box around the frontal face (brows to below the mouth,
cheek to cheek), as the Haar cascade returns it; the run's framing was measured with that
box (edgeth.data.framing), so another detector should return comparable boxes.

Shape legend: H/W photo pixels, 3 RGB channels.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from edgeth.errors import InputError
from edgeth.registry import Registry
from edgeth.runtime_py.face import Box

DETECT_MAX_SIDE = 1024  # larger photos are detected on a downscaled copy (boxes scaled back)


class FaceDetector(Protocol):
    def detect(self, image: np.ndarray) -> list[Box]:
        """uint8 [H, W, 3] RGB -> face boxes in its pixels, the most prominent first (may be empty)."""
        ...


DETECTORS: Registry = Registry("face detector")


def register_detector(name: str):
    """Class decorator: `@register_detector("name")` on a class with `detect(image) -> [Box]`."""
    return DETECTORS.register(name)


def detector_names() -> list[str]:
    return DETECTORS.names()


def get_detector(name: str = "haar") -> FaceDetector:
    return DETECTORS.get(name)()


@register_detector("haar")
class HaarDetector:
    """OpenCV's haarcascade_frontalface_default.xml (shipped in the opencv-python-headless<5 wheel)."""

    cascade_file = "haarcascade_frontalface_default.xml"

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5):
        import cv2

        path = cv2.data.haarcascades + self.cascade_file
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise InputError(f"OpenCV's face cascade {path} is missing or unreadable",
                             "install opencv-python-headless<5 (5.x no longer ships the cascades)")
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors

    def detect(self, image: np.ndarray) -> list[Box]:
        import cv2

        img = np.asarray(image)
        scale = max(1.0, max(img.shape[:2]) / DETECT_MAX_SIDE)
        if scale > 1.0:
            img = cv2.resize(img, (round(img.shape[1] / scale), round(img.shape[0] / scale)), interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
        side = max(12, min(gray.shape) // 20)
        found = self.cascade.detectMultiScale(gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                              minSize=(side, side))
        boxes = [Box(float(x) * scale, float(y) * scale, float(w) * scale, float(h) * scale) for x, y, w, h in found]
        return sorted(boxes, key=lambda b: -b.w * b.h)


def detect_face(image: np.ndarray, detector: str | FaceDetector = "haar", what: str = "the portrait") -> Box:
    """The most prominent face in a uint8 RGB image, or a one-line InputError when there is none."""
    det = get_detector(detector) if isinstance(detector, str) else detector
    boxes = det.detect(image)
    if not boxes:
        raise InputError(f"no face found in {what}",
                         "pass --crop x,y,w,h to give the face region, or --no-crop for a pre-cropped portrait")
    return boxes[0]


def detect_track(frames: np.ndarray, detector: str | FaceDetector = "haar", stride: int = 5) -> list[Box | None]:
    """Detections on every `stride`-th frame of uint8 [T, H, W, 3] (None where no face); one entry per frame sampled."""
    det = get_detector(detector) if isinstance(detector, str) else detector
    out: list[Box | None] = []
    for f in frames[::max(1, int(stride))]:
        boxes = det.detect(f)
        out.append(boxes[0] if boxes else None)
    return out
