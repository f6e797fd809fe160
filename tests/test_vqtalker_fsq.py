"""GRFSQ and its VQ variants (models/common/fsq.py): exact inverse, residual refinement,
utilization and bitrate math, one-hot decoding."""
from __future__ import annotations

import math

import pytest
import torch

from edgeth.models.common.fsq import CodeLookup, GroupedResidualQuantizer, QuantizerConfig, utilization


def _x(n=512, dim=48, seed=0):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) * 0.6


@pytest.mark.parametrize("levels", [(5, 5, 5, 5), (8, 5, 5, 5), (4, 4)])
def test_indices_and_vectors_are_exact_inverses(levels):
    cfg = QuantizerConfig(groups=3, residual=4, levels=levels)
    q = GroupedResidualQuantizer(cfg).eval()
    x = _x(256, cfg.dim)
    quantized, idx, _ = q(x)
    assert idx.shape == (256, 3, 4) and idx.min() >= 0 and idx.max() < cfg.codes
    assert torch.equal(q.decode(idx), quantized)  # indices -> vector, bit for bit
    assert torch.equal(CodeLookup(q)(idx.int()), quantized)  # the export path too
    # vector -> indices: every index decodes to a distinct vector, and all K codes round-trip
    every = torch.arange(cfg.codes)[:, None, None].expand(-1, 3, 4)
    vecs = q.decode(every)
    assert torch.unique(vecs[:, :cfg.group_dim], dim=0).shape[0] == cfg.codes


def test_each_residual_stage_lowers_reconstruction_error():
    x = _x(1024)
    errs = []
    for r in range(1, 5):
        q = GroupedResidualQuantizer(QuantizerConfig(groups=12, residual=r)).eval()
        errs.append(float((q(x)[0] - x).pow(2).mean()))
    assert all(b < a * 0.9 for a, b in zip(errs, errs[1:])), errs


def test_pre_rounding_rounds_to_the_digits():
    cfg = QuantizerConfig(groups=2, residual=3, levels=(5, 5))
    q = GroupedResidualQuantizer(cfg).eval()
    x = _x(64, cfg.dim)
    pre = q.pre_rounding(x)
    digits = torch.round(pre) + 2
    idx = (digits * torch.tensor([1, 5])).sum(-1).long()
    assert torch.equal(idx, q.indices(x))


def test_straight_through_gradient_and_vq_variants_train():
    x = _x(256).requires_grad_(True)
    q = GroupedResidualQuantizer(QuantizerConfig()).train()
    out, _, _ = q(x)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for g, r in ((1, 1), (12, 1), (1, 4), (12, 4)):
        cfg = QuantizerConfig(kind="vq", groups=g, residual=r, codebook_size=64, code_dim=48 // g)
        vq = GroupedResidualQuantizer(cfg).train()
        opt = torch.optim.Adam(vq.parameters(), lr=1e-2)
        first = None
        for _ in range(30):
            qv, idx, aux = vq(_x(256, 48, seed=1))
            opt.zero_grad()
            aux.backward()
            opt.step()
            first = first if first is not None else float(aux)
        assert float(aux) < first and idx.shape[-2:] == (g, r)
        vq.eval()
        qv, idx, _ = vq(_x(32))
        assert torch.equal(vq.decode(idx), qv)


def test_utilization_and_bitrate_math():
    cfg = QuantizerConfig()
    assert cfg.codes == 625 and cfg.name() == "GRFSQ"
    assert cfg.bitrate(25) == pytest.approx(4 * 12 * math.log2(625) * 25)
    assert 11_100 < cfg.bitrate(25) < 11_200
    assert QuantizerConfig(kind="vq", groups=1, residual=1, codebook_size=1024).bitrate(25) == 250
    idx = torch.zeros(10, 2, 1, dtype=torch.long)
    idx[:5, 0, 0] = torch.arange(5)
    assert utilization(idx, 10) == pytest.approx((5 / 10 + 1 / 10) / 2)


def test_code_lookup_exports_as_one_gather_not_a_one_hot_over_the_codebook():
    """The one-hot decoding compared every index with all K codes (eq) and cast the [N, G, R, K]
    result: 64 % of the ExecuTorch token generator's time, in portable kernels. The lookup is one
    embedding gather, exact against the quantizer's own decode."""
    cfg = QuantizerConfig(groups=12, residual=4, levels=(5, 5, 5, 5))
    q = GroupedResidualQuantizer(cfg).eval()
    idx = torch.randint(0, cfg.codes, (20, 12, 4), dtype=torch.int32, generator=torch.Generator().manual_seed(1))
    lookup = CodeLookup(q)
    assert torch.equal(lookup(idx), q.decode(idx.long()))
    ep = torch.export.export(lookup, (idx,))
    ops = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert any("embedding" in o for o in ops), ops
    assert not any(".eq." in o or o.endswith(".eq") for o in ops), ops
    big = [n for n in ep.graph.nodes if n.op == "call_function"
           and cfg.codes in tuple(getattr(n.meta.get("val"), "shape", ()))[-1:]]
    assert not big, f"a K-wide intermediate is still built: {[str(n.target) for n in big]}"
