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


def _speech_windows(n: int, clips: int = 3) -> list[np.ndarray]:
    from edgeth.data import speech

    out = []
    for seed in range(clips):
        rng = np.random.default_rng(seed)
        w = np.asarray(speech.speak(rng, 3 * n // 640, speech.sample_voice(rng))[0], np.float32)
        out += [w[i:i + n] for i in range(0, w.size - n + 1, n)]
    return out


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
    run = t.runner(tmp_path, entry)
    (got,) = run(wave[None])
    assert got.shape == ref.shape and np.abs(got - ref).max() <= 5e-5
    # synthetic speech (vowels, fricatives, silences): quiet bins amplify float reassociation
    # under the log; the 3e-3 log floor keeps the worst bin well inside the 1e-4 FP32 bound
    # (measured on ONNX Runtime over 18 windows: 1.5e-4 with a 1e-5 floor, 1.4e-5 with 3e-3)
    worst = 0.0
    for w in _speech_windows(wave.size):
        (got,) = run(w[None])
        worst = max(worst, float(np.abs(got - fe(torch.from_numpy(w)[None]).detach().numpy()).max()))
    assert worst <= 5e-5, worst
    if target == "executorch":  # the DFT conv and the mel matmul run inside XNNPACK, not on portable kernels
        delegated = art.report["delegated_ops"]
        assert "aten.convolution" in delegated, art.report
        assert not {"aten.convolution", "aten.mm", "aten.bmm"} & set(art.report["portable_compute_ops"]), art.report
