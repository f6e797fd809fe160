"""Property-based fuzzing: every parser edgeth owns either parses or raises EdgethError (never
another exception, never a hang). A few hundred examples per parser here; benchmarks/fuzz.py
runs 10,000+ per parser and counts which errors came out (tests/fuzz_support.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzz_support as F

FUZZ = settings(max_examples=200, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def bundle(fixture_bundle):
    return fixture_bundle["bundle"]


@FUZZ
@given(data=st.data())
def test_manifest_loader(data, bundle, work):
    base = json.loads((bundle / "manifest.json").read_text())
    F.manifest_target(bundle)(data.draw(F.manifest_examples(base)), work)


def test_manifest_loader_accepts_the_real_manifest(bundle, work):
    assert F.manifest_target(bundle)((bundle / "manifest.json").read_bytes(), work) == "ok"


@FUZZ
@given(data=st.data())
def test_golden_loader(data, bundle, work):
    valid = (bundle / "golden" / "denoiser.npz").read_bytes()
    F.golden_target(bundle)(data.draw(F.npz_examples(valid)), work)


@FUZZ
@given(data=st.data())
def test_device_dump_loader(data, bundle, work):
    F.dump_target(bundle)(data.draw(F.npz_examples()), work)


@FUZZ
@given(example=F.wav_examples())
def test_audio_reader(example, work):
    F.audio_target()(example, work)


@FUZZ
@given(example=F.junit_examples())
def test_junit_writer(example, work):
    F.junit_target()(example, work)


@FUZZ
@given(example=F.token_examples())
def test_token_file_reader(example, work):
    F.token_target()(example, work)


@FUZZ
@given(stream=F.token_streams())
def test_token_files_round_trip(stream):
    from edgeth.models.vqtalker.codec import from_bytes, to_bytes

    back = from_bytes(to_bytes(stream))
    assert back.levels == tuple(stream.levels) and back.fps == stream.fps
    np.testing.assert_array_equal(back.indices, stream.indices)


@FUZZ
@given(example=F.polygraphy_examples())
def test_polygraphy_writer(example, work):
    F.polygraphy_target()(example, work)
