"""Token parity attached to `edgeth verify`: a pipeline stage of kind "indices" carries its
agreement per group and per residual layer, the first diverging frame and near-boundary counts
in its check's detail (runtime_py/token_parity.stage_token_detail), read from a reference-only
VQTalker bundle."""
from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def vq_bundle(vqtalker_tiny_run, tmp_path_factory):
    from edgeth.bundle.export import export_bundle

    out = tmp_path_factory.mktemp("vqbundle") / "bundle"
    return export_bundle(vqtalker_tiny_run, out, targets=[], progress=False, golden_calls=2).path


def test_verify_json_carries_token_detail(vq_bundle):
    from click.testing import CliRunner

    from edgeth.cli import cli

    r = CliRunner().invoke(cli, ["verify", str(vq_bundle), "--backend", "torch", "--json"])
    assert r.exit_code == 0, r.output
    checks = {c["name"]: c for c in json.loads(r.output[r.output.index("{"):])["reports"][0]["checks"]}
    tok = checks["quality/pipeline/indices"]["detail"]["tokens"]
    G, R = 12, 4
    assert len(tok["per_group"]) == G and len(tok["per_layer"]) == R
    assert tok["agreement"] == 1.0 and tok["first_diverging_frame"] is None
    near = tok["near_boundary"]
    assert set(near) == {"fp32", "fp16", "int8"} and tok["near_boundary_of"] == {"pre": "pre_rounding",
                                                                                  "logits": "logits"}
    assert near["int8"]["fsq_values"] > 0 and near["int8"]["argmax_decisions"] > 0
    assert near["int8"]["fsq_boundary"] >= near["fp16"]["fsq_boundary"] >= near["fp32"]["fsq_boundary"]
    assert "tokens" in checks["quality/pipeline/speech_tokens"]["detail"]


def test_a_flipped_token_is_the_first_divergence(vq_bundle):
    from edgeth.bundle.golden import split_pipeline
    from edgeth.bundle.io import load_bundle
    from edgeth.runtime_py.verify import compare_stages

    b = load_bundle(vq_bundle)
    _, ref = split_pipeline(b.pipeline_golden())
    got = ref["indices"].copy()
    K = b.pipeline_spec().extra["quantizer"]["codes"]
    got[7, 3, 2] = (got[7, 3, 2] + 1) % K
    c = next(c for c in compare_stages(b, None, None, {"indices": got}) if c.name.endswith("/indices"))
    tok = c.detail["tokens"]
    assert tok["first_diverging_frame"] == 7 and "first diverging frame 7" in c.worst
    n = got.shape[0]
    assert tok["per_layer"][2] == pytest.approx(1 - 1 / (n * 12)) and tok["per_layer"][0] == 1.0
    assert tok["per_group"][3] == pytest.approx(1 - 1 / (n * 4)) and tok["per_group"][0] == 1.0
    assert c.metrics["token_agreement"] == pytest.approx(1 - 1 / got.size)
    np.testing.assert_array_equal(ref["indices"][:7], got[:7])
