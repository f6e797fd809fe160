"""The shared audio frontend: matches a numpy/scipy log-mel, and lowers to ExecuTorch and ONNX."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeth.audio import AudioConfig, AudioFrontend, reference_logmel


@pytest.fixture(scope="module")
def wave() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(640 * 10) / 16000
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def test_matches_reference_and_aligns_with_frames(wave):
    fe = AudioFrontend(AudioConfig()).eval()
    got = fe(torch.from_numpy(wave)[None])[0].numpy()
    ref = reference_logmel(wave, AudioConfig())
    assert got.shape == ref.shape == (40, 80)  # 10 video frames -> 4 hops each
    assert np.abs(got - ref).max() <= 1e-4


@pytest.mark.parametrize("target", ["executorch", "onnx"])
def test_exports_through_the_targets(wave, tmp_path, target):
    from edgeth.program import Program, TensorSpec
    from edgeth.targets import get_target

    fe = AudioFrontend(AudioConfig()).eval()
    x = torch.from_numpy(wave)[None]
    ref = fe(x).detach().numpy()
    prog = Program("audio_frontend", fe, [TensorSpec("wave", tuple(x.shape), kind="audio")],
                   [TensorSpec("logmel", tuple(ref.shape), kind="features")], (x,))
    t = get_target(target)
    art = t.export(prog, None, tmp_path)
    entry = {"name": prog.name, "files": art.files, "precision": "fp32",
             "inputs": [s.to_json() for s in prog.inputs], "outputs": [s.to_json() for s in prog.outputs]}
    (got,) = t.runner(tmp_path, entry)(wave[None])
    assert got.shape == ref.shape
    # log of near-silent mel bins amplifies float reassociation; the loud bins match tightly
    assert np.abs(got - ref).max() <= 1e-3
    if target == "executorch":  # the DFT conv and the mel matmul run inside XNNPACK, not on portable kernels
        delegated = art.report["delegated_ops"]
        assert "aten.convolution" in delegated, art.report
        assert not {"aten.convolution", "aten.mm", "aten.bmm"} & set(art.report["portable_compute_ops"]), art.report
