"""Pipeline: a bundle's whole pipeline (audio -> motion -> frames) on one backend.

The driver registered for the spec's kind (edgeth.runtime_py.pipelines) runs the host
code — sampler loop, windowing, audio frontend — and every program call goes to the
chosen backend. This is what an app does; `edgeth run` is a thin wrapper.

    from edgeth.runtime_py.pipeline import Pipeline
    result = Pipeline("bundle/", "executorch").run(image, audio, seed=0)
    result.frames  # [T, H, W, 3] float32 in [0, 1]

Streaming (speech arriving in chunks, frames out as soon as they are final):

    for frame in Pipeline("bundle/", "executorch").stream(image, mic_chunks, seed=0):
        show(frame)  # [H, W, 3]

With `noise=RecordedNoise(...)` (or `Pipeline.golden_noise(bundle)`) every backend samples
the trajectory the PyTorch reference sampled when the bundle was exported.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeth.errors import InputError
from edgeth.runtime_py.backends import program_call
from edgeth.runtime_py.pipelines import PipelineResult, RecordedNoise, SeededNoise, get_pipeline


class Pipeline:
    def __init__(self, bundle: Any, backend: str = "torch", threads: int | None = None, call: Any = None):
        """`call`: an existing program_call(bundle, backend) to reuse (its runners stay loaded)."""
        from edgeth.bundle.io import Bundle, load_bundle

        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(Path(bundle))
        self.backend = backend
        self.spec = self.bundle.pipeline_spec()
        self.call = call if call is not None else program_call(self.bundle, backend, threads)
        self.driver = get_pipeline(self.spec.kind)

    def run(self, image: np.ndarray, audio: np.ndarray, seed: int | None = None, noise: Any = None,
            progress: bool = False, **options: Any) -> PipelineResult:
        """image [H,W,3] in [0,1] (uint8 accepted); audio [S] mono at the spec's sample rate;
        options: the spec's declared pipeline options (unknown names are an InputError)."""
        options = self.spec.parse_options(options)
        image = check_image(image)
        audio = check_audio(audio)
        if noise is None:
            noise = SeededNoise(0 if seed is None else int(seed))
        return self.driver(self.spec, self.call, image=image, audio=audio, noise=noise, progress=progress, **options)

    def stream(self, image: np.ndarray, chunks: Any, seed: int | None = None, noise: Any = None,
               progress: bool = False, **options: Any):
        """A FrameStream (edgeth.runtime_py.stream) of frames from `chunks`, an iterable of mono
        audio arrays arriving over time. With the same noise its frames equal run()'s."""
        from edgeth.runtime_py.pipelines import stream_driver
        from edgeth.runtime_py.stream import FrameStream

        options = self.spec.parse_options(options)
        image = check_image(image)
        if noise is None:
            noise = SeededNoise(0 if seed is None else int(seed))
        drive = stream_driver(self.driver)
        return FrameStream(lambda timed: drive(self.spec, self.call, image=image, chunks=timed, noise=noise,
                                               progress=progress, **options), chunks)

    def run_golden(self, progress: bool = False) -> PipelineResult:
        """Replay the bundle's golden input with its recorded noise and options."""
        g = self.bundle.pipeline_golden()
        opts = dict(self.bundle.manifest["golden"].get("options", {}))
        return self.run(g["image"], g["audio"], noise=Pipeline.golden_noise(self.bundle), progress=progress, **opts)

    @staticmethod
    def golden_noise(bundle) -> RecordedNoise:
        from edgeth.bundle.golden import split_pipeline

        noise, _ = split_pipeline(bundle.pipeline_golden())
        return RecordedNoise(noise)


def check_image(image: Any) -> np.ndarray:
    """[H, W, 3] RGB as float32 in [0, 1] (uint8 is scaled). Drivers resize to the spec's size."""
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[-1] not in (3, 4) or min(a.shape[:2]) < 2:
        raise InputError(f"portrait has shape {a.shape}, expected [H, W, 3] RGB", "pass an RGB image")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if not np.issubdtype(a.dtype, np.floating):
        raise InputError(f"portrait has dtype {a.dtype}", "pass uint8 or float in [0, 1]")
    return a.astype(np.float32, copy=False)


def check_audio(audio: Any) -> np.ndarray:
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 2 and 1 in a.shape:
        a = a.reshape(-1)
    if a.ndim != 1 or a.size == 0:
        raise InputError(f"audio has shape {a.shape}, expected mono samples [S]", "pass mono speech audio")
    return a
