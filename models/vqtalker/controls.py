"""VQTalker's audio-conditioned head pose / gaze / blink generator (seeds/002 §3.3: at
inference "pose, gaze and blink come from a small audio-conditioned generator or a reference
clip"; PBNet's role in MDCF).

SpeechControls: speech tokens int32 [B, T] -> standardized controls [B, T, C] (CONTROL_KEYS,
(raw - mean) / std with the run's control statistics). An embedding of the speech tokens (the
same token stream the token generator reads: the k-means tokenizer's or an external one)
feeds the shared dilated-conv ControlGenerator (edgeth.models.common.pose_generator); trained
by MSE on the corpus's ground-truth controls (fit stage "controls"). The `control_generator`
program, run once per window; the driver's default source of controls.

Shape legend: B batch, T frames, V speech vocabulary, E width, C = 6 controls.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from edgeth.models.common.pose_generator import ControlGenerator
from edgeth.models.vqtalker.config import CONTROL_KEYS, VQTalkerConfig


class SpeechControls(nn.Module):
    """speech int32 [B, T] -> controls [B, T, C] (standardized)."""

    def __init__(self, cfg: VQTalkerConfig):
        super().__init__()
        self.embed = nn.Embedding(cfg.speech_vocab, cfg.controls_width)
        self.net = ControlGenerator(cfg.controls_width, CONTROL_KEYS, cfg.controls_width)

    def forward(self, speech: torch.Tensor) -> torch.Tensor:
        return self.net(self.embed(speech))

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"loss": self.net.loss(self.embed(batch["speech"]), batch["controls"])}
