"""The mouth painter (models/common/mouth.MouthPatch; IF-MDM issue 18): the renderer's gated blend
never learned to draw an open mouth from a closed portrait; the painter is an ungated residual
on the mouth box that does, and that leaves every pixel outside the box alone."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from edgeth.data.render import neutral_motion, render_frames, sample_identity
from edgeth.models.ifmdm.config import preset
from edgeth.models.common.mouth import MouthPatch


def _pairs(n: int = 8, size: int = 64):
    """(closed-mouth portraits, the same faces with the mouth open) [n, 3, S, S] in [-1, 1]."""
    rng = np.random.default_rng(0)
    closed, opened = [], []
    for _ in range(n):
        ident = sample_identity(rng)
        m = neutral_motion(2)
        m["mouth_open"][1] = 1.0
        fr = torch.from_numpy(render_frames(ident, m, size)).permute(0, 3, 1, 2).float() / 127.5 - 1
        closed.append(fr[0])
        opened.append(fr[1])
    return torch.stack(closed), torch.stack(opened)


def _painter():
    torch.manual_seed(0)
    cfg = dataclasses.replace(preset("tiny").stage1, mouth_patch_channels=16)
    return cfg, MouthPatch(cfg.mouth_pixels, 16, 16, code_dim=2)


def test_the_painter_starts_as_the_identity_and_never_touches_pixels_outside_the_mouth_box():
    cfg, p = _painter()
    closed, _ = _pairs(4)
    h = torch.randn(4, 16, 64, 64)
    code = torch.randn(4, 2)
    assert torch.equal(p(h, closed, code), closed)  # zero-initialised residual
    torch.nn.init.normal_(p.out.weight, std=0.5)
    out = p(h, closed, code)
    t, b, l, r = cfg.mouth_pixels
    inside = torch.zeros_like(out, dtype=torch.bool)
    inside[:, :, t:b, l:r] = True
    assert torch.equal(out[~inside], closed[~inside])
    assert (out - closed)[inside].abs().max() > 0.01
    # faded to zero at the box's edge: no seam where it is pasted back
    assert torch.allclose(out[:, :, t, l:r], closed[:, :, t, l:r]) and torch.allclose(out[:, :, t:b, l], closed[:, :, t:b, l])


def _fit(p, cfg, code_of, steps: int = 200):
    """Closed portraits -> the same faces closed (code 0) or open (code 1); returns (loss, the copy's loss)."""
    closed, opened = _pairs(8)
    t, b, l, r = cfg.mouth_pixels
    src, tgt = torch.cat([closed, closed]), torch.cat([closed, opened])[:, :, t:b, l:r]
    code = code_of(torch.cat([torch.zeros(8), torch.ones(8)]))
    h = torch.zeros(16, 16, 64, 64)
    copy = float(torch.nn.functional.mse_loss(src[:, :, t:b, l:r], tgt))
    opt = torch.optim.Adam(p.parameters(), 1e-3)
    for _ in range(steps):
        loss = torch.nn.functional.mse_loss(p(h, src, code)[:, :, t:b, l:r], tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach()), copy


def test_the_painter_opens_a_closed_mouth_when_the_code_says_so():
    """Half the targets keep the mouth closed, half open it, from the same closed portraits: only
    the code tells them apart. A painter blind to the code can at best paint every mouth half open
    (half the copy's error); this one gets well below that."""
    cfg, p = _painter()
    loss, copy = _fit(p, cfg, lambda o: torch.stack([o, o], 1))
    assert loss < 0.3 * copy, (loss, copy)
