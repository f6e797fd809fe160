"""Speech tokens at the video frame rate (stands in for CosyVoice's tokenizer, seeds/002 §3.3,
which cannot be downloaded here).

A k-means codebook over pooled log-mel features: the shared 80-bin log-mel frontend
(edgeth.audio, 4 hops per 25 fps frame), the 4 mel frames of a video frame concatenated
(320 dims), standardized, nearest centroid -> one token per frame (V tokens).

  SpeechTokenizer            the interface the generator reads: vocab, tokens(wave, n_frames)
  KMeansSpeechTokenizer      trained here on the corpus (fit), runs as the `speech_tokenizer`
                             program (scores = -squared distance, argmax on the host)
  ExternalTokens             another tokenizer's stream (e.g. CosyVoice tokens resampled to
                             the frame rate, saved as .npy): validated against the vocabulary;
                             numpy only, so it lives with the driver (driver.py)

Shape legend: S samples (16 kHz), T frames, M mel bins, P = 4 M pooled dims, V vocabulary.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
import torch.nn as nn

from edgeth.errors import InputError
from edgeth.models.vqtalker.driver import ExternalTokens  # noqa: F401 (part of this interface)


class SpeechTokenizer(Protocol):
    vocab: int

    def tokens(self, wave: np.ndarray, n_frames: int) -> np.ndarray: ...  # int64 [T]


class SpeechTokenizerProgram(nn.Module):
    """wave [B, S] -> scores [B, T, V] (argmax = the nearest centroid = the token)."""

    def __init__(self, centroids: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, mels_per_frame: int = 4):
        super().__init__()
        from edgeth.audio import AudioFrontend

        self.frontend = AudioFrontend()
        self.mpf = mels_per_frame
        self.register_buffer("centroids", centroids.float())  # [V, P]
        self.register_buffer("mean", mean.float())  # [P]
        self.register_buffer("std", std.float())  # [P]

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        mel = self.frontend(wave)  # [B, 4T, M]
        b, n, m = mel.shape
        return (mel.reshape(b, n // self.mpf, self.mpf * m) - self.mean) / self.std

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(x . c - |c|^2 / 2) / P: the nearest centroid scores highest. Without the per-frame
        constant -|x|^2 / 2 and divided by P the scores are O(1): as raw squared distances
        (O(100)) float reassociation on XNNPACK / ONNX Runtime gave 2.7e-3 absolute error,
        past the 1e-4 FP32 bound though the port was correct."""
        x = self.features(wave)
        c = self.centroids
        return (torch.matmul(x, c.t()) - 0.5 * (c * c).sum(-1)) / c.shape[1]


class KMeansSpeechTokenizer:
    def __init__(self, program: SpeechTokenizerProgram):
        self.program = program.eval()
        self.vocab = int(program.centroids.shape[0])

    @torch.no_grad()
    def tokens(self, wave: np.ndarray, n_frames: int) -> np.ndarray:
        from edgeth.audio import fit_length

        x = torch.from_numpy(fit_length(wave, n_frames * 640))[None]
        return self.program(x)[0].argmax(-1).numpy().astype(np.int64)

    @classmethod
    @torch.no_grad()
    def fit(cls, waves: list[np.ndarray], vocab: int, iters: int = 25, seed: int = 0) -> "KMeansSpeechTokenizer":
        """k-means++ then Lloyd iterations over every frame of `waves` (each 640 T samples)."""
        P = 4 * 80
        prog = SpeechTokenizerProgram(torch.zeros(vocab, P), torch.zeros(P), torch.ones(P))
        feats = torch.cat([prog.features(torch.from_numpy(np.asarray(w, np.float32))[None])[0] for w in waves])
        mean, std = feats.mean(0), feats.std(0).clamp_min(1e-3)
        x = (feats - mean) / std
        if x.shape[0] < vocab:
            raise InputError(f"{x.shape[0]} speech frames cannot fit {vocab} tokens", "use more or longer clips")
        g = torch.Generator().manual_seed(seed)
        cent = x[torch.randint(0, x.shape[0], (1,), generator=g)]
        for _ in range(vocab - 1):  # k-means++
            d = torch.cdist(x, cent).min(1).values.pow(2)
            cent = torch.cat([cent, x[torch.multinomial(d / d.sum(), 1, generator=g)]])
        for _ in range(iters):
            a = torch.cdist(x, cent).argmin(1)
            for k in range(vocab):
                sel = x[a == k]
                if len(sel):
                    cent[k] = sel.mean(0)
        prog.centroids.copy_(cent)
        prog.mean.copy_(mean)
        prog.std.copy_(std)
        return cls(prog)
