"""The audio frontend every model shares: 80-bin log-mel at 16 kHz, 4 hops per video frame.

`AudioFrontend` is a `torch.nn.Module` built from exportable ops only (zero pad, a conv1d
whose fixed weights are a windowed DFT basis, square, matmul with a mel filterbank, clamp,
log) so it lowers unchanged to ExecuTorch, Core ML, ONNX and TensorRT: no `torch.stft`,
no complex tensors. `reference_logmel` is the same transform in numpy (framing + rfft),
used by tests and by host code that wants features without torch.

Alignment (25 fps video, hop 160): a window of n_fft samples is centred on the middle of
each hop, i.e. the signal is zero-padded by (n_fft - hop) // 2 on the left and the rest of
n_fft - hop on the right, so S samples give exactly S // 160 mel frames and a clip of
T video frames (S = 640 * T samples) gives exactly 4 * T mel frames; mel frames 4t..4t+3
belong to video frame t.

Shape legend: B batch, S samples (16 kHz), N = S // hop mel frames, M mel bins (80),
K = n_fft // 2 + 1 frequency bins.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np


@dataclass(frozen=True)
class AudioConfig:
    sample_rate: int = 16000
    n_fft: int = 400  # 25 ms window
    win: int = 400  # Hann window length (<= n_fft, centred in the frame)
    hop: int = 160  # 10 ms; 4 hops per 25 fps video frame
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0
    log_floor: float = 3e-3  # log(max(mel, floor)), natural log; see the note below

    def __post_init__(self):
        if not (0 < self.win <= self.n_fft) or self.hop <= 0 or self.n_fft < self.hop:
            raise ValueError(f"AudioConfig: need 0 < win <= n_fft and 0 < hop <= n_fft, got {self}")
        if not (0 <= self.fmin < self.fmax <= self.sample_rate / 2):
            raise ValueError(f"AudioConfig: need 0 <= fmin < fmax <= sample_rate/2, got {self}")

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def pad(self) -> tuple[int, int]:
        """(left, right) zero padding that makes S samples give exactly S // hop frames."""
        total = self.n_fft - self.hop
        return total // 2, total - total // 2

    def samples_per_frame(self, fps: int = 25) -> int:
        return self.sample_rate // fps

    def mels_per_frame(self, fps: int = 25) -> int:
        return self.samples_per_frame(fps) // self.hop

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any] | str) -> "AudioConfig":
        if isinstance(d, str):
            d = json.loads(d)
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-9) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=8)
def mel_filterbank(cfg: AudioConfig) -> np.ndarray:
    """Triangular Slaney-normalised mel filters, float64 [K, M] (power spectrum -> mel)."""
    freqs = np.linspace(0.0, cfg.sample_rate / 2, cfg.n_freq)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(cfg.fmin), _hz_to_mel(cfg.fmax), cfg.n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / (mid - lo)
    down = (hi - freqs[None]) / (hi - mid)
    fb = np.maximum(0.0, np.minimum(up, down)) * (2.0 / (hi - lo))  # Slaney area normalisation
    fb.flags.writeable = False
    return fb.T.copy()


@lru_cache(maxsize=8)
def analysis_window(cfg: AudioConfig) -> np.ndarray:
    """Periodic Hann of length `win`, zero-padded (centred) to n_fft, float64 [n_fft]."""
    n = np.arange(cfg.win)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * n / cfg.win)
    out = np.zeros(cfg.n_fft)
    start = (cfg.n_fft - cfg.win) // 2
    out[start : start + cfg.win] = w
    return out


def reference_logmel(wave: np.ndarray, cfg: AudioConfig = AudioConfig()) -> np.ndarray:
    """numpy reference: [S] or [B, S] float -> [N, M] or [B, N, M] float32 log-mel (float64 inside)."""
    x = np.asarray(wave, dtype=np.float64)
    squeeze = x.ndim == 1
    x = np.atleast_2d(x)
    left, right = cfg.pad
    x = np.pad(x, ((0, 0), (left, right)))
    n = (x.shape[1] - cfg.n_fft) // cfg.hop + 1
    idx = np.arange(cfg.n_fft)[None, :] + cfg.hop * np.arange(max(n, 0))[:, None]
    frames = x[:, idx] * analysis_window(cfg)  # [B, N, n_fft]
    power = np.abs(np.fft.rfft(frames, n=cfg.n_fft, axis=-1)) ** 2
    mel = power @ mel_filterbank(cfg)
    out = np.log(np.maximum(mel, cfg.log_floor)).astype(np.float32)
    return out[0] if squeeze else out


def dft_basis(cfg: AudioConfig) -> np.ndarray:
    """Windowed real DFT basis as conv1d weights, float64 [2K, 1, n_fft]: K cosines then K sines."""
    n = np.arange(cfg.n_fft)
    k = np.arange(cfg.n_freq)[:, None]
    ang = 2 * np.pi * k * n[None, :] / cfg.n_fft
    w = analysis_window(cfg)[None, :]
    return np.concatenate([np.cos(ang) * w, -np.sin(ang) * w], axis=0)[:, None, :]


def _module_class():
    import torch
    import torch.nn.functional as F

    class AudioFrontend(torch.nn.Module):  # noqa: F811 - exposed through the module __getattr__
        """wave [B, S] float32 (16 kHz, ~[-1, 1]) -> log-mel [B, S // hop, n_mels]."""

        def __init__(self, cfg: AudioConfig = AudioConfig()):
            super().__init__()
            self.cfg = cfg
            self.register_buffer("basis", torch.tensor(dft_basis(cfg), dtype=torch.float32), persistent=False)
            self.register_buffer("mel_fb", torch.tensor(mel_filterbank(cfg), dtype=torch.float32), persistent=False)

        def forward(self, wave: torch.Tensor) -> torch.Tensor:
            left, right = self.cfg.pad
            x = F.pad(wave.unsqueeze(1), (left, right))  # [B, 1, S + n_fft - hop]
            spec = F.conv1d(x, self.basis, stride=self.cfg.hop)  # [B, 2K, N]
            k = self.cfg.n_freq
            power = spec[:, :k] * spec[:, :k] + spec[:, k:] * spec[:, k:]  # [B, K, N]
            mel = torch.matmul(power.transpose(1, 2), self.mel_fb)  # [B, N, M]
            return torch.log(torch.clamp(mel, min=self.cfg.log_floor))

    AudioFrontend.__qualname__ = "AudioFrontend"
    return AudioFrontend


def __getattr__(name: str):
    """`AudioFrontend` is defined on first access, so `import edgeth.audio` does not import torch."""
    if name == "AudioFrontend":
        cls = _module_class()
        globals()["AudioFrontend"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def frames_to_samples(n_frames: int, fps: int = 25, cfg: AudioConfig = AudioConfig()) -> int:
    """Audio samples that belong to n_frames video frames (640 per frame at 25 fps, 16 kHz)."""
    return n_frames * cfg.samples_per_frame(fps)


def fit_length(audio: np.ndarray, n_samples: int) -> np.ndarray:
    """Trim or zero-pad a 1-D signal to exactly n_samples (float32)."""
    a = np.asarray(audio, dtype=np.float32).reshape(-1)
    if a.shape[0] >= n_samples:
        return a[:n_samples].copy()
    return np.pad(a, (0, n_samples - a.shape[0]))
