"""VQTalker training on the tiny fixture run: tokenizer and generator losses fall, the
generator's argmax tokens follow the tokenizer's on training clips, the audio-driven pipeline
records its stages, and token parity metrics behave."""
from __future__ import annotations

import json

import numpy as np
import pytest


def _log(run, stage):
    return [json.loads(x) for x in (run / f"{stage}.log.jsonl").read_text().splitlines() if x.strip()]


def test_tokenizer_and_generator_losses_fall(vqtalker_tiny_run):
    tok, gen = _log(vqtalker_tiny_run, "tokenizer"), _log(vqtalker_tiny_run, "generator")
    assert tok[-1]["rec"] < 0.8 * tok[0]["rec"], (tok[0]["rec"], tok[-1]["rec"])
    assert gen[-1]["loss"] < 0.7 * gen[0]["loss"], (gen[0]["loss"], gen[-1]["loss"])
    assert "utilization" in tok[-1] and 0 < tok[-1]["utilization"] <= 1


def test_generator_tokens_follow_the_tokenizer_on_training_clips(vqtalker_tiny_run, synth_corpus):
    import torch

    from edgeth.data.dataset import load_corpus
    from edgeth.models import get_model
    from edgeth.models.vqtalker.speech import KMeansSpeechTokenizer
    from edgeth.models.vqtalker.training import clip_tensors

    run = get_model("vqtalker").load(vqtalker_tiny_run)
    clip = load_corpus(synth_corpus, size=64, split="train")[0]
    c = clip_tensors(run.tokenizer, KMeansSpeechTokenizer(run.speech), clip, run.stats)
    t, h = run.cfg.window, 0
    want = run.tokenizer.quantizer.indices(c["f"][:t] - c["f"][h])
    got = run.generator.generate(c["speech"][None, :t], c["f_g"][h:h + 1], c["controls"][None, :t])[0]
    layer0 = float((got[..., 0] == want[..., 0]).float().mean())
    chance = 1 / run.cfg.quantizer.codes
    assert layer0 > 0.5, layer0  # most layer-0 tokens (the coarse motion) match
    assert float((got == want).float().mean()) > 50 * chance


def test_pipeline_records_token_stages(vqtalker_tiny_run, synth_corpus):
    from edgeth.generate import load_reference
    from edgeth.runtime_py.pipelines import SeededNoise, get_pipeline
    from edgeth.runtime_py.torch_backend import torch_call

    _, spec, progs = load_reference(vqtalker_tiny_run)
    image = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    audio = (np.random.default_rng(1).standard_normal(16000 + 3000) * 0.1).astype(np.float32)
    res = get_pipeline(spec.kind)(spec, torch_call(progs), image=image, audio=audio, noise=SeededNoise(0))
    n = res.frames.shape[0]
    assert n == 30 and res.extras["windows"] == 2
    for stage in spec.stage_names():
        if stage != "frames":
            assert isinstance(res.extras[stage], np.ndarray) and res.extras[stage].shape[0] == n
    assert res.extras["indices"].shape == (n, 12, 4) and 0 <= res.extras["cycle_agreement"] <= 1
    assert set(res.extras["calls"]) == set(spec.programs)


def test_external_speech_tokens_are_validated(vqtalker_tiny_run, tmp_path):
    from edgeth.errors import InputError
    from edgeth.models.vqtalker.driver import ExternalTokens

    np.save(tmp_path / "ok.npy", np.arange(10) % 8)
    assert ExternalTokens.load(tmp_path / "ok.npy", 64).tokens(None, 12).tolist()[-3:] == [1, 1, 1]
    np.save(tmp_path / "big.npy", np.array([1, 99]))
    with pytest.raises(InputError, match="outside"):
        ExternalTokens.load(tmp_path / "big.npy", 64)
    np.save(tmp_path / "f.npy", np.zeros(3, np.float32))
    with pytest.raises(InputError, match="integer"):
        ExternalTokens.load(tmp_path / "f.npy", 64)


def test_token_parity_metrics():
    from edgeth.runtime_py.token_parity import near_argmax_tie, near_fsq_boundary, token_report

    ref = np.zeros((10, 3, 2), np.int32)
    got = ref.copy()
    got[4, 1, 0] = 7
    rep = token_report(ref, got, pre=np.array([0.5 + 1e-4, 1.2, -0.49]), logits=np.array([[1.0, 1.0 + 1e-4, 0.0]]))
    assert rep["first_diverging_frame"] == 4 and rep["per_layer"][1] == 1.0 and rep["per_group"][1] < 1.0
    assert rep["near_boundary"]["fp32"]["fsq_boundary"] == 0 and rep["near_boundary"]["fp16"]["fsq_boundary"] == 1
    assert near_fsq_boundary(np.array([0.5 + 1e-4, -0.498, 0.45]), "int8") == 2
    assert near_argmax_tie(np.array([[1.0, 1.0 + 1e-4]]), "fp16") == 1
    assert near_argmax_tie(np.array([[1.0, 2.0]]), "fp16") == 0
