"""Parity metrics (edgeth.runtime_py.parity): known values and pass/fail judgement."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edgeth.runtime_py import parity as P


@pytest.fixture
def img():
    rng = np.random.default_rng(0)
    return (0.1 + 0.8 * rng.random((4, 32, 32, 3))).astype(np.float32)


def test_identical_arrays(img):
    assert P.max_abs(img, img) == 0.0
    assert P.cosine(img, img) == pytest.approx(1.0, abs=1e-12)
    assert math.isinf(P.sqnr_db(img, img)) and P.sqnr_db(img, img) > 0
    assert math.isinf(P.psnr_db(img, img))
    assert P.ssim(img, img) == 1.0
    assert P.token_agreement(np.arange(10), np.arange(10)) == 1.0


def test_psnr_known_noise_level(img):
    # exact: +-0.01 everywhere -> MSE 1e-4 -> 40 dB for images in [0, 1]
    signs = np.where(np.random.default_rng(1).random(img.shape) < 0.5, -1.0, 1.0)
    assert P.psnr_db(img, img + 0.01 * signs) == pytest.approx(40.0, abs=1e-6)
    # gaussian noise of std 0.003: expected 20*log10(1/0.003) = 50.46 dB within 0.1 dB
    big = np.random.default_rng(2).random((200_000,)) * 0.8 + 0.1
    noisy = big + np.random.default_rng(3).normal(0, 0.003, big.shape)
    assert P.psnr_db(big, noisy) == pytest.approx(20 * math.log10(1 / 0.003), abs=0.1)
    # images in [-1, 1] use a peak of 2
    sym = img * 2 - 1
    assert P.psnr_db(sym, sym + 0.01 * signs) == pytest.approx(10 * math.log10(4 / 1e-4), abs=1e-6)


def test_sqnr_cosine_known_values():
    ref = np.ones(100)
    assert P.sqnr_db(ref, ref * 1.1) == pytest.approx(20.0, abs=1e-9)
    a, b = np.array([1.0, 0.0]), np.array([0.0, 3.0])
    assert P.cosine(a, b) == pytest.approx(0.0)
    assert P.cosine(a, -2 * a) == pytest.approx(-1.0)
    assert P.mean_abs([0, 0, 0, 0], [1, -1, 0, 2]) == pytest.approx(1.0)
    assert P.max_abs([0, 0], [0.5, -3]) == 3.0


def test_ssim_orders_noise_levels(img):
    rng = np.random.default_rng(4)
    small = P.ssim(img, img + rng.normal(0, 0.01, img.shape))
    large = P.ssim(img, img + rng.normal(0, 0.1, img.shape))
    assert 0 < large < small < 1
    assert P.ssim(img, img + rng.normal(0, 0.05, img.shape)) == pytest.approx(
        P.ssim(img + 0, img + rng.normal(0, 0.05, img.shape)), abs=0.02)
    # channels-first layouts give the same value as channels-last
    noisy = img + rng.normal(0, 0.05, img.shape)
    assert P.ssim(img.transpose(0, 3, 1, 2), noisy.transpose(0, 3, 1, 2)) == pytest.approx(P.ssim(img, noisy), rel=1e-9)


def test_token_agreement_and_flow_smoothness():
    assert P.token_agreement([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75
    t = np.arange(10, dtype=np.float64)
    assert P.flow_smoothness(np.stack([3 * t, -t], 1)) == pytest.approx(0.0)  # constant velocity
    assert P.flow_smoothness(t ** 2) == pytest.approx(2.0)  # second difference of t^2 is 2
    assert P.flow_smoothness_rel(t ** 2, 1.5 * t ** 2) == pytest.approx(0.5)


def test_compare_judges_tolerances():
    ref = np.zeros((2, 8, 12), np.float32)
    ok = P.compare("motion", ref, ref + 5e-5, {"max_abs": 1e-4})
    assert ok.passed and "max_abs" in ok.worst
    bad = P.compare("motion", ref, ref + 2e-4, {"max_abs": 1e-4}, name="program/x/y")
    assert not bad.passed and bad.name == "program/x/y" and "max_abs" in bad.worst
    assert not P.compare("motion", ref, ref[:1], {"max_abs": 1}).passed  # shape mismatch fails
    idx = np.arange(12)
    assert P.compare("indices", idx, idx, {"token_agreement": 1.0}).passed
    assert not P.compare("indices", idx, np.where(idx == 3, 0, idx), {"token_agreement": 1.0}).passed
    # lower bounds: a PSNR below the bound fails
    r = np.full((1, 3, 8, 8), 0.5)
    assert not P.compare("image", r, r + 0.01, {"psnr_db": 60}).passed
    assert P.compare("image", r, r + 1e-5, {"psnr_db": 60}).passed


def test_compare_frames_finds_worst_frame(img):
    got = img.copy()
    got[2] += 0.01
    c = P.compare_frames(img, got, {"psnr_db": 60.0})
    assert not c.passed and c.detail["curve"]["worst_frame"] == 2
    assert math.isinf(c.detail["curve"]["psnr_db"][0])
    assert c.metrics["psnr_db"] == pytest.approx(40.0, abs=1e-4)
    assert "frame 2" in c.worst
    assert P.compare_frames(img, img, {"psnr_db": 60.0}).passed
    js = c.to_json()
    assert js["detail"]["curve"]["psnr_db"][0] == "inf"
