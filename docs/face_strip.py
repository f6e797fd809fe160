"""Draw the README's before/after strip: photo (crop box drawn) | model input | generated crop |
pasted-back frame | two pasted frames zoomed on the box.

    python docs/face_strip.py --ckpt RUN/ --audio speech.wav -o docs/face_strip.png

The photo defaults to scikit-image's astronaut (Eileen Collins, NASA, public domain; bundled in
the scikit-image wheel). The strip shows the crop/paste geometry, so a briefly trained run
(tests/ifmdm_support.train_tiny_run) is enough.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True, type=Path)
    ap.add_argument("--audio", required=True, type=Path)
    ap.add_argument("--image", type=Path, default=None)
    ap.add_argument("-o", "--out", type=Path, default=Path("docs/face_strip.png"))
    ap.add_argument("--panel", type=int, default=200)
    a = ap.parse_args()

    from edgeth.data.video import read_video
    from edgeth.generate import generate
    from edgeth.runtime_py.face import Box, crop

    tmp = Path(tempfile.mkdtemp())
    image = a.image
    if image is None:
        from skimage import data

        image = tmp / "astronaut.png"
        Image.fromarray(data.astronaut()).save(image)
    photo = np.asarray(Image.open(image).convert("RGB"))
    res = generate(a.ckpt, image, a.audio, tmp / "out.mp4", steps=10, progress=False)
    box = Box(*res.extras["crop"]["box"])
    pasted, _ = read_video(tmp / "out.mp4")
    p = a.panel

    def panel(img: np.ndarray) -> Image.Image:
        return Image.fromarray(np.asarray(img, np.uint8)).resize((p, p), Image.BICUBIC)

    first = panel(photo)
    s = p / photo.shape[1]
    ImageDraw.Draw(first).rectangle([box.x * s, box.y * s, (box.x + box.w) * s, (box.y + box.h) * s], outline=(255, 60, 60), width=2)
    size = res.extras["crop"]["model_size"]
    gen = (np.clip(res.frames[len(res.frames) // 2], 0, 1) * 255).round()
    t1, t2 = len(pasted) // 3, 2 * len(pasted) // 3
    zoom = Box(box.x - box.w * 0.25, box.y - box.h * 0.25, box.w * 1.5, box.h * 1.5)
    panels = [first, panel(crop(photo, box, size)), panel(gen), panel(pasted[t1]),
              panel(crop(pasted[t1], zoom, p)), panel(crop(pasted[t2], zoom, p))]
    strip = Image.new("RGB", (p * len(panels) + 4 * (len(panels) - 1), p), (255, 255, 255))
    for i, im in enumerate(panels):
        strip.paste(im, (i * (p + 4), 0))
    strip.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(a.out, optimize=True)
    print(f"wrote {a.out} ({a.out.stat().st_size // 1024} KB), crop box {res.extras['crop']['box']}")


if __name__ == "__main__":
    main()
