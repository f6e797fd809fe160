"""VQTalker coarse-to-fine motion token generator (seeds/002 §3.3, Fig. 2b, Fig. 3).

A bidirectional transformer over a window of T frames. For residual layer r it reads
{f_g, the layer indicator, and per frame: speech token, controls (head pose, gaze, blink),
the tokens of layers < r} and predicts the G indices of layer r for every frame at once.
It runs R times with shared weights (r = 0 .. R-1), each pass feeding the argmax of the last.

Inputs of one pass (the `token_generator` program):
  speech  int32 [B, T]          speech tokens (k-means tokenizer or an external stream)
  f_g     [B, Cg]               global face feature of the portrait
  controls [B, T, C]            standardized yaw, pitch, roll, gaze x/y, blink
  tokens  int32 [B, T, G, R]    indices so far; layers >= r are ignored (masked in the graph)
  layer   [B, R]                one-hot layer indicator r
  -> logits [B, T, G, K]        per-group scores of layer r's indices (argmax on the host)

Tokens of earlier layers enter as their code vectors (the exact one-hot lookup of
models/common/fsq.py, kept float), masked to layers < r by `layer @ strictly-lower`, a
constant matmul. Conditioning: the sum of the token embeddings plus f_g/layer, which also
modulates every block (adaLN, models/common/attention.py). Training: teacher forcing with the
tokenizer's indices, a random layer per sample, cross-entropy averaged over groups.

Shape legend: B batch, T window, G groups, R residual layers, K codes, d code dims, E width,
V speech vocabulary, Cg global dims, C = 6 controls.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeth.models.common.attention import ModulatedBlock
from edgeth.models.common.fsq import CodeLookup, GroupedResidualQuantizer
from edgeth.models.common.layers import PlainLayerNorm
from edgeth.models.vqtalker.config import CONTROL_KEYS, VQTalkerConfig


class TokenGenerator(nn.Module):
    def __init__(self, cfg: VQTalkerConfig):
        super().__init__()
        q = cfg.quantizer
        self.cfg = cfg
        self.G, self.R, self.K, E = q.groups, q.residual, q.codes, cfg.gen_width
        self.codes = CodeLookup(GroupedResidualQuantizer(q))
        self.speech = nn.Embedding(cfg.speech_vocab, E)
        self.controls = nn.Linear(len(CONTROL_KEYS), E)
        self.prev = nn.Linear(q.groups * q.residual * q.group_dim, E)
        self.cond = nn.Linear(cfg.global_dim + q.residual, E)
        self.pos = nn.Parameter(torch.randn(cfg.window, E) * 0.02)
        self.blocks = nn.ModuleList(ModulatedBlock(E, cfg.gen_heads, cfg.gen_mlp_ratio) for _ in range(cfg.gen_depth))
        self.norm = PlainLayerNorm(E)
        self.head = nn.Linear(E, q.groups * q.codes)
        self.register_buffer("below", torch.tril(torch.ones(q.residual, q.residual), -1), persistent=False)

    def forward(self, speech: torch.Tensor, f_g: torch.Tensor, controls: torch.Tensor, tokens: torch.Tensor,
                layer: torch.Tensor) -> torch.Tensor:
        b, t = speech.shape
        per = self.codes.per_layer(tokens.reshape(b * t, self.G, self.R))  # [BT, G, R, d]
        mask = torch.matmul(layer, self.below)  # [B, R]: 1 for layers < r
        per = per.reshape(b, t, self.G, self.R, -1) * mask[:, None, None, :, None]
        c = self.cond(torch.cat([f_g, layer], dim=1))[:, None, :].expand(b, t, -1)
        x = self.speech(speech) + self.controls(controls) + self.prev(per.reshape(b, t, -1)) + self.pos + c
        for blk in self.blocks:
            x = blk(x, c)
        return self.head(self.norm(x)).reshape(b, t, self.G, self.K)

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tokens, r = batch["tokens"], batch["layer"]  # [B, T, G, R], [B]
        layer = F.one_hot(r, self.R).float()
        logits = self(batch["speech"], batch["f_g"], batch["controls"], tokens, layer)
        target = torch.gather(tokens, 3, r[:, None, None, None].expand(-1, tokens.shape[1], self.G, 1))[..., 0]
        loss = F.cross_entropy(logits.reshape(-1, self.K), target.reshape(-1).long())
        acc = (logits.argmax(-1) == target).float().mean()
        return {"loss": loss, "acc": acc.detach()}

    @torch.no_grad()
    def generate(self, speech: torch.Tensor, f_g: torch.Tensor, controls: torch.Tensor) -> torch.Tensor:
        """Coarse to fine: R passes, argmax each -> indices [B, T, G, R] (the driver does the same
        on any backend; this is the eager shortcut for tests and benchmarks)."""
        b, t = speech.shape
        tokens = torch.zeros(b, t, self.G, self.R, dtype=torch.int32)
        for r in range(self.R):
            layer = F.one_hot(torch.full((b,), r), self.R).float()
            tokens[..., r] = self(speech, f_g, controls, tokens, layer).argmax(-1).int()
        return tokens
