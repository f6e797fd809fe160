"""Grouped residual quantizers: FSQ (Mentzer et al. 2023) and learned-codebook VQ in one class,
so VQ / group VQ / residual VQ / GRVQ / GRFSQ (VQTalker, seeds/002 Table 3) are configs.

Follows VQTalker Algorithm 1 (GRFSQ): the input x [..., G*d] is split into G groups of d dims;
each group is quantized by R residual stages; stage r quantizes residual / scale_r and adds
back q_r * scale_r. FSQ bounds each dim with tanh to L levels, rounds (straight-through
estimator in training), and a code's index is its digits in mixed radix (levels). Same API as
vector-quantize-pytorch's GroupedResidualFSQ (quantized, indices; inverse from indices), written
here instead because it needs none of that package's four extra dependencies and is ~200 lines
(its eval path was measured equally exportable, see the family note).

  q = GroupedResidualQuantizer(QuantizerConfig())
  quantized, indices, aux = q(x)   x [..., G*d] -> [..., G*d], int64 [..., G, R], scalar aux loss
  q.decode(indices)                exact inverse of the indices (== quantized in eval)
  q.pre_rounding(x)                [..., G, R, d]: the values FSQ rounds (near-boundary counts)
  q.lookup_table()                 [G, R, K, d]: every code's contribution (one-hot decoding)

Export notes: indices leave a program as int32; decoding in a program is a one-hot
(indices == arange K) times lookup_table(), exact in FP32 and FP16 (FSQ codes are dyadic) and
free of integer division. Shape legend: G groups, R residual stages, d code dims per group,
K codes per stage (prod(levels) for FSQ, codebook_size for VQ), N leading dims.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

KINDS = ("fsq", "vq")


@dataclass(frozen=True)
class QuantizerConfig:
    kind: str = "fsq"  # fsq | vq
    groups: int = 12  # G
    residual: int = 4  # R
    levels: tuple[int, ...] = (5, 5, 5, 5)  # FSQ levels per code dim (d = len(levels))
    codebook_size: int = 625  # VQ: K
    code_dim: int = 4  # VQ: d
    commitment: float = 0.25  # VQ commitment weight

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"quantizer kind {self.kind!r} not in {KINDS}")
        if self.groups < 1 or self.residual < 1:
            raise ValueError("groups and residual must be >= 1")
        if self.kind == "fsq" and (not self.levels or min(self.levels) < 2):
            raise ValueError(f"FSQ levels {self.levels} must be >= 2 each")

    @property
    def group_dim(self) -> int:
        return len(self.levels) if self.kind == "fsq" else self.code_dim

    @property
    def dim(self) -> int:
        return self.groups * self.group_dim

    @property
    def codes(self) -> int:
        return math.prod(self.levels) if self.kind == "fsq" else self.codebook_size

    def bits_per_frame(self) -> float:
        return self.groups * self.residual * math.log2(self.codes)

    def bitrate(self, fps: float) -> float:
        """Bits per second of the token stream (e.g. 4 x 12 x log2 625 x 25 = 11.1 kbps)."""
        return self.bits_per_frame() * fps

    def name(self) -> str:
        g, r = self.groups > 1, self.residual > 1
        if self.kind == "fsq":
            return "GRFSQ" if g and r else "GFSQ" if g else "RFSQ" if r else "FSQ"
        return "GRVQ" if g and r else "GVQ" if g else "RVQ" if r else "VQ"


class GroupedResidualQuantizer(nn.Module):
    def __init__(self, cfg: QuantizerConfig, eps: float = 1e-3):
        super().__init__()
        self.cfg = cfg
        G, R, d = cfg.groups, cfg.residual, cfg.group_dim
        if cfg.kind == "fsq":
            lv = torch.tensor(cfg.levels, dtype=torch.float32)
            self.register_buffer("levels", lv, persistent=False)
            self.register_buffer("basis", torch.cumprod(torch.tensor([1, *cfg.levels[:-1]]), 0), persistent=False)
            half_l = (lv - 1) * (1 + eps) / 2
            offset = (lv % 2 == 0).float() * 0.5
            self.register_buffer("half_l", half_l, persistent=False)
            self.register_buffer("offset", offset, persistent=False)
            self.register_buffer("shift", torch.atanh(offset / half_l), persistent=False)
            self.register_buffer("half_w", torch.div(lv, 2, rounding_mode="floor"), persistent=False)
            # stage r works at scale (L - 1)^-r, so each stage refines the last one's rounding error
            self.register_buffer("scales", torch.stack([(lv - 1) ** -r for r in range(R)]), persistent=False)
        else:
            self.codebook = nn.Parameter(torch.randn(G, R, cfg.codebook_size, d) * 0.1)
            self.register_buffer("initialized", torch.zeros(()), persistent=True)

    # -- FSQ ------------------------------------------------------------------------------
    def _bound(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z + self.shift) * self.half_l - self.offset

    def _fsq_stages(self, x: torch.Tensor, ste: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [N, G, d] -> (quantized [N, G, d], digits [N, G, R, d], pre-rounding [N, G, R, d])."""
        res, total, digits, pres = x, torch.zeros_like(x), [], []
        for r in range(self.cfg.residual):
            bounded = self._bound(res / self.scales[r])
            rounded = torch.round(bounded)
            q_int = bounded + (rounded - bounded).detach() if ste else rounded
            q = q_int / self.half_w * self.scales[r]
            total = total + q
            res = res - q.detach() if ste else res - q
            digits.append(rounded + self.half_w)
            pres.append(bounded)
        return total, torch.stack(digits, -2), torch.stack(pres, -2)

    # -- VQ -------------------------------------------------------------------------------
    def _vq_stages(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [N, G, d] -> (quantized straight-through [N, G, d], indices [N, G, R], aux loss)."""
        if self.training and not bool(self.initialized):
            self._init_codebook(x.detach())
        res, total, idx, aux = x, torch.zeros_like(x), [], x.new_zeros(())
        for r in range(self.cfg.residual):
            cb = self.codebook[:, r]  # [G, K, d]
            dist = (res.pow(2).sum(-1, keepdim=True) - 2 * torch.einsum("ngd,gkd->ngk", res, cb)
                    + cb.pow(2).sum(-1)[None])
            i = dist.argmin(-1)  # [N, G]
            q = torch.gather(cb[None].expand(i.shape[0], -1, -1, -1), 2,
                             i[:, :, None, None].expand(-1, -1, 1, cb.shape[-1]))[:, :, 0]
            aux = aux + F.mse_loss(q, res.detach()) + self.cfg.commitment * F.mse_loss(res, q.detach())
            total = total + q
            res = res - q
            idx.append(i)
        st = x + (total - x).detach() if self.training else total
        return st, torch.stack(idx, -1), aux

    @torch.no_grad()
    def _init_codebook(self, x: torch.Tensor) -> None:
        """Codebooks from data (residuals of the stages before), so no code starts dead."""
        res = x
        for r in range(self.cfg.residual):
            pick = torch.randint(0, res.shape[0], (self.cfg.codebook_size,), device=x.device)
            self.codebook.data[:, r] = res[pick].transpose(0, 1) + 1e-3 * torch.randn_like(self.codebook[:, r])
            res = res * 0.25
        self.initialized.fill_(1.0)

    # -- API ------------------------------------------------------------------------------
    def _groups(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.cfg.dim:
            raise ValueError(f"quantizer takes {self.cfg.dim} dims, got {x.shape[-1]}")
        return x.reshape(-1, self.cfg.groups, self.cfg.group_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lead = x.shape[:-1]
        xg = self._groups(x)
        if self.cfg.kind == "fsq":
            q, digits, _ = self._fsq_stages(xg, ste=self.training)
            idx, aux = self.index_of(digits).long(), x.new_zeros(())
        else:
            q, idx, aux = self._vq_stages(xg)
        return q.reshape(*lead, self.cfg.dim), idx.reshape(*lead, self.cfg.groups, self.cfg.residual), aux

    def index_of(self, digits: torch.Tensor) -> torch.Tensor:
        """FSQ digits [..., d] (0 .. L-1 per dim, float) -> index (mixed radix, same dtype)."""
        return (digits * self.basis.to(digits.dtype)).sum(-1)

    def indices(self, x: torch.Tensor) -> torch.Tensor:
        """Indices only (eval path of the `quantizer` program), int64 [..., G, R]."""
        return self.forward(x)[1]

    def pre_rounding(self, x: torch.Tensor) -> torch.Tensor:
        """FSQ: the bounded values that are rounded, [..., G, R, d] in level units (a rounding
        boundary at every half-integer)."""
        if self.cfg.kind != "fsq":
            raise ValueError("pre_rounding is defined for FSQ only")
        _, _, pre = self._fsq_stages(self._groups(x), ste=False)
        return pre.reshape(*x.shape[:-1], *pre.shape[1:])

    def lookup_table(self) -> torch.Tensor:
        """[G, R, K, d]: the vector each index of stage r of group g adds to the output."""
        if self.cfg.kind == "vq":
            return self.codebook
        k = torch.arange(self.cfg.codes)
        digits = torch.stack([(k // int(b)) % int(lv) for b, lv in zip(self.basis, self.cfg.levels)], -1).float()
        codes = (digits - self.half_w) / self.half_w  # [K, d]
        table = codes[None] * self.scales[:, None, :]  # [R, K, d]
        return table[None].expand(self.cfg.groups, -1, -1, -1).contiguous()

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """indices [..., G, R] -> quantized [..., G*d] (exact inverse)."""
        table = self.lookup_table()
        G, R = self.cfg.groups, self.cfg.residual
        flat = indices.reshape(-1, G, R).long()
        gi = torch.arange(G)[None, :, None].expand_as(flat)
        ri = torch.arange(R)[None, None, :].expand_as(flat)
        vec = table[gi, ri, flat].sum(2)  # [N, G, d]
        return vec.reshape(*indices.shape[:-2], self.cfg.dim)


class CodeLookup(nn.Module):
    """Export-friendly decoding: indices int [N, G, R] -> vectors [N, G*d] as one embedding
    lookup in a constant flattened table [G*R*K, d] (row = (g*R + r)*K + index: an add with a
    constant, no integer division; exact in FP32 and FP16). The old one-hot matmul compared
    every index against all K codes and cast the result: 64 % of the ExecuTorch token
    generator's time went to those two portable kernels. Keep it float_only: INT8 would round
    the table."""

    def __init__(self, quantizer: GroupedResidualQuantizer):
        super().__init__()
        with torch.no_grad():
            table = quantizer.lookup_table().detach().clone()  # [G, R, K, d]
        g, r, k, _ = table.shape
        self.register_buffer("table", table)  # [G, R, K, d], as saved runs hold it; read flattened
        offsets = (torch.arange(g * r, dtype=torch.int32) * k).reshape(g, r)
        self.register_buffer("offsets", offsets, persistent=False)

    def per_layer(self, indices: torch.Tensor) -> torch.Tensor:
        """indices [N, G, R] -> each stage's vector [N, G, R, d]."""
        return F.embedding(indices.to(torch.int32) + self.offsets, self.table.reshape(-1, self.table.shape[-1]))

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        g, _, _, d = self.table.shape
        return self.per_layer(indices).sum(2).reshape(indices.shape[0], g * d)


def utilization(indices: torch.Tensor, codes: int) -> float:
    """Mean over (group, stage) of the fraction of the K codes used in `indices` [..., G, R]."""
    flat = indices.reshape(-1, indices.shape[-2] * indices.shape[-1])
    used = [torch.unique(flat[:, j]).numel() / codes for j in range(flat.shape[1])]
    return float(sum(used) / len(used))
