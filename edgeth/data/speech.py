"""Speech-like audio from a source-filter synthesizer, with the mouth shape it implies.

A small phoneme inventory (5 vowels with distinct formants, nasals, voiced and unvoiced
fricatives, voiced and unvoiced stops, approximants, silence) is strung into syllables,
words and phrases. Each phoneme maps to a viseme (mouth opening, mouth width); the mouth
track and the acoustic parameters are built from the same timeline, so the mouth is
learnable from the audio: open vowels are loud with a high F1, closed lips are silent or
nasal, fricatives are high-frequency noise.

Synthesis (Klatt-style, cascade): a glottal impulse train (F0 contour with declination and
intonation) through a 2-pole spectral-tilt low-pass and three time-varying formant
resonators, plus band-limited noise for frication, bursts and aspiration. Control tracks
run at 400 Hz (one block per 40 samples) and are smoothed (coarticulation) before use.

Shape legend: S samples (16 kHz), T video frames (25 fps), C control steps (400 Hz).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000
BLOCK = 40  # samples per control step (2.5 ms)

# Noise bands (Hz) mixed with time-varying gains.
NOISE_BANDS = {"hi": (4000, 7600), "mid": (1800, 3800), "flat": (1000, 7600), "lo": (300, 1500), "asp": (500, 5000)}


@dataclass(frozen=True)
class Phoneme:
    kind: str  # vowel | nasal | approx | fric | vfric | stop | vstop | sil
    formants: tuple[float, float, float]  # F1, F2, F3 (Hz) of the voiced part
    voice: float  # voiced amplitude
    noise: str | None  # NOISE_BANDS key of the frication / burst
    noise_amp: float
    viseme: tuple[float, float]  # (mouth_open, mouth_width) targets in [0, 1]
    dur: tuple[float, float]  # duration range (s) at rate 1


_NEUTRAL = (500.0, 1500.0, 2500.0)
PHONEMES: dict[str, Phoneme] = {
    "a": Phoneme("vowel", (730, 1090, 2440), 1.00, None, 0.0, (0.95, 0.60), (0.10, 0.22)),
    "e": Phoneme("vowel", (530, 1840, 2480), 0.85, None, 0.0, (0.55, 0.80), (0.09, 0.20)),
    "i": Phoneme("vowel", (270, 2290, 3010), 0.70, None, 0.0, (0.25, 0.95), (0.08, 0.18)),
    "o": Phoneme("vowel", (570, 840, 2410), 0.90, None, 0.0, (0.70, 0.30), (0.10, 0.22)),
    "u": Phoneme("vowel", (300, 870, 2240), 0.65, None, 0.0, (0.30, 0.15), (0.09, 0.20)),
    "m": Phoneme("nasal", (250, 1000, 2300), 0.30, None, 0.0, (0.00, 0.50), (0.05, 0.10)),
    "n": Phoneme("nasal", (250, 1500, 2500), 0.30, None, 0.0, (0.20, 0.55), (0.05, 0.10)),
    "l": Phoneme("approx", (360, 1300, 2700), 0.50, None, 0.0, (0.35, 0.55), (0.05, 0.09)),
    "w": Phoneme("approx", (300, 700, 2200), 0.45, None, 0.0, (0.15, 0.10), (0.05, 0.09)),
    "v": Phoneme("vfric", (300, 1200, 2400), 0.30, "flat", 0.10, (0.12, 0.60), (0.05, 0.10)),
    "z": Phoneme("vfric", (300, 1700, 2600), 0.25, "hi", 0.12, (0.15, 0.75), (0.06, 0.11)),
    "f": Phoneme("fric", _NEUTRAL, 0.0, "flat", 0.10, (0.12, 0.60), (0.07, 0.13)),
    "s": Phoneme("fric", _NEUTRAL, 0.0, "hi", 0.22, (0.15, 0.75), (0.08, 0.14)),
    "sh": Phoneme("fric", _NEUTRAL, 0.0, "mid", 0.22, (0.25, 0.30), (0.08, 0.14)),
    "h": Phoneme("fric", _NEUTRAL, 0.0, "asp", 0.08, (0.45, 0.55), (0.05, 0.09)),
    "p": Phoneme("stop", _NEUTRAL, 0.0, "lo", 0.30, (0.00, 0.50), (0.07, 0.12)),
    "b": Phoneme("vstop", (250, 900, 2300), 0.10, "lo", 0.20, (0.00, 0.50), (0.06, 0.10)),
    "t": Phoneme("stop", _NEUTRAL, 0.0, "hi", 0.25, (0.20, 0.60), (0.06, 0.11)),
    "d": Phoneme("vstop", (300, 1700, 2600), 0.10, "hi", 0.18, (0.20, 0.60), (0.05, 0.10)),
    "k": Phoneme("stop", _NEUTRAL, 0.0, "mid", 0.25, (0.30, 0.55), (0.07, 0.12)),
    "g": Phoneme("vstop", (300, 1600, 2300), 0.10, "mid", 0.18, (0.30, 0.55), (0.06, 0.10)),
    "sil": Phoneme("sil", _NEUTRAL, 0.0, None, 0.0, (0.0, 0.50), (0.12, 0.45)),
}
VOWELS = [p for p, v in PHONEMES.items() if v.kind == "vowel"]
ONSETS = [p for p, v in PHONEMES.items() if v.kind not in ("vowel", "sil")]
CODAS = ["m", "n", "l", "s", "z", "f", "t", "k", "p", "d"]
# Voice bandwidths (Hz) of the three formants.
BANDWIDTHS = (80.0, 100.0, 150.0)


@dataclass(frozen=True)
class Voice:
    f0: float = 140.0  # mean pitch (Hz)
    formant_scale: float = 1.0  # vocal-tract length factor
    breathiness: float = 0.03  # aspiration mixed into voiced sounds
    rate: float = 1.0  # speaking-rate factor (>1 faster)

    def to_json(self) -> dict:
        return {k: float(getattr(self, k)) for k in self.__dataclass_fields__}


def sample_voice(rng: np.random.Generator) -> Voice:
    f0 = float(rng.uniform(95, 230))
    scale = float(np.clip(0.92 + 0.18 * (f0 - 95) / 135 + rng.normal(0, 0.03), 0.88, 1.18))
    return Voice(f0=f0, formant_scale=scale, breathiness=float(rng.uniform(0.0, 0.08)), rate=float(rng.uniform(0.85, 1.15)))


def sample_timeline(rng: np.random.Generator, seconds: float, voice: Voice) -> list[tuple[str, float, float, float]]:
    """A phrase/word/syllable sequence covering `seconds`: [(phoneme, start, end, emphasis)]."""
    out: list[tuple[str, float, float, float]] = []
    t = 0.0

    def add(p: str, emph: float = 1.0, scale: float = 1.0):
        nonlocal t
        lo, hi = PHONEMES[p].dur
        d = float(rng.uniform(lo, hi)) * scale / voice.rate
        out.append((p, t, t + d, emph))
        t += d

    add("sil", scale=float(rng.uniform(0.3, 1.0)))
    while t < seconds:
        for _word in range(int(rng.integers(1, 4))):  # a phrase of 1-3 words
            for _syl in range(int(rng.integers(1, 4))):
                emph = float(rng.uniform(0.7, 1.1))
                if rng.random() < 0.8:
                    add(str(rng.choice(ONSETS)))
                add(str(rng.choice(VOWELS)), emph)
                if rng.random() < 0.35:
                    add(str(rng.choice(CODAS)))
            if rng.random() < 0.3:
                add("sil", scale=0.4)
        add("sil")
    return out


def _control_tracks(timeline, voice: Voice, n_ctrl: int) -> dict[str, np.ndarray]:
    """Piecewise-constant targets per control step (before smoothing)."""
    keys = ("f1", "f2", "f3", "voice", "mouth_open", "mouth_width") + tuple(f"n_{b}" for b in NOISE_BANDS)
    tr = {k: np.zeros(n_ctrl) for k in keys}
    rate = SAMPLE_RATE / BLOCK
    for p, start, end, emph in timeline:
        ph = PHONEMES[p]
        a, b = int(round(start * rate)), min(n_ctrl, int(round(end * rate)))
        if a >= b:
            continue
        f = [x * voice.formant_scale for x in ph.formants]
        tr["f1"][a:b], tr["f2"][a:b], tr["f3"][a:b] = f
        tr["mouth_open"][a:b] = ph.viseme[0] * (emph if ph.kind == "vowel" else 1.0)
        tr["mouth_width"][a:b] = ph.viseme[1]
        tr["voice"][a:b] = ph.voice * (emph if ph.kind == "vowel" else 1.0)
        if ph.kind in ("stop", "vstop"):  # closure, then a burst in the last third
            burst = a + max(1, int((b - a) * 2 / 3))
            tr[f"n_{ph.noise}"][burst:b] = ph.noise_amp
            tr["n_asp"][burst:b] += 0.05 if ph.kind == "stop" else 0.0
        elif ph.noise:
            tr[f"n_{ph.noise}"][a:b] = ph.noise_amp
        if ph.kind in ("vowel", "approx", "nasal"):
            tr["n_asp"][a:b] += voice.breathiness * ph.voice
    return tr


def _smooth(x: np.ndarray, sigma_s: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(x, sigma_s * SAMPLE_RATE / BLOCK, mode="nearest")


def _glottal_source(f0_ctrl: np.ndarray, n: int) -> np.ndarray:
    """Impulse train following the per-sample F0, through a -12 dB/oct spectral tilt."""
    from scipy.signal import lfilter

    f0 = np.repeat(f0_ctrl, BLOCK)[:n]
    phase = np.cumsum(f0 / SAMPLE_RATE)
    src = np.diff(np.floor(phase), prepend=0.0)
    src -= src.mean()
    r = np.exp(-2 * np.pi * 300 / SAMPLE_RATE)  # two poles at ~300 Hz: glottal roll-off
    return lfilter([(1 - r) ** 2], [1, -2 * r, r * r], src)


def _formant_filter(x: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Cascade of three 2-pole resonators (unity DC gain), coefficients updated per block."""
    from scipy.signal import sosfilt

    out = np.empty_like(x)
    zi = np.zeros((3, 2))
    bw = np.asarray(BANDWIDTHS)
    for c in range(f.shape[1]):
        s = slice(c * BLOCK, (c + 1) * BLOCK)
        if s.start >= x.shape[0]:
            break
        r = np.exp(-np.pi * bw / SAMPLE_RATE)
        a1 = -2 * r * np.cos(2 * np.pi * f[:, c] / SAMPLE_RATE)
        a2 = r * r
        g = 1 + a1 + a2
        sos = np.stack([g, np.zeros(3), np.zeros(3), np.ones(3), a1, a2], axis=1)
        out[s], zi = sosfilt(sos, x[s], zi=zi)
    return out


def _band_noise(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    from scipy.signal import butter, sosfilt

    white = rng.standard_normal(n)
    out = {}
    for name, (lo, hi) in NOISE_BANDS.items():
        sos = butter(4, [lo, hi], btype="bandpass", fs=SAMPLE_RATE, output="sos")
        y = sosfilt(sos, white)
        out[name] = y / (np.std(y) + 1e-9)
    return out


def synthesize(timeline, voice: Voice, n_samples: int, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Render a timeline: audio float32 [S] (peak <= ~0.9) and smoothed control tracks [C]."""
    n_ctrl = -(-n_samples // BLOCK)
    tr = _control_tracks(timeline, voice, n_ctrl)
    t = np.arange(n_ctrl) * BLOCK / SAMPLE_RATE
    # F0: declination across the clip plus slow intonation, in Hz.
    wobble = sum(0.06 * np.sin(2 * np.pi * rng.uniform(0.3, 1.5) * t + rng.uniform(0, 2 * np.pi)) for _ in range(2))
    f0 = voice.f0 * (1.0 + wobble - 0.08 * t / max(t[-1], 1e-6))
    formants = np.stack([_smooth(tr[k], 0.02) for k in ("f1", "f2", "f3")])
    voiced = _formant_filter(_glottal_source(f0, n_samples), formants)
    voiced *= np.repeat(_smooth(tr["voice"], 0.006), BLOCK)[:n_samples] / (np.std(voiced) * 4 + 1e-9)
    noise = _band_noise(rng, n_samples)
    audio = voiced + sum(np.repeat(_smooth(tr[f"n_{b}"], 0.004), BLOCK)[:n_samples] * noise[b] for b in NOISE_BANDS) * 0.25
    audio = audio / (np.max(np.abs(audio)) + 1e-9) * 0.85
    audio += rng.standard_normal(n_samples) * 1e-3  # room noise: silence is never digital zero
    smooth = {
        "mouth_open": np.clip(_smooth(tr["mouth_open"], 0.025), 0, 1),
        "mouth_width": np.clip(_smooth(tr["mouth_width"], 0.03), 0, 1),
        "energy": _smooth(tr["voice"] + sum(tr[f"n_{b}"] for b in NOISE_BANDS), 0.01),
    }
    return audio.astype(np.float32), smooth


def speak(rng: np.random.Generator, n_frames: int, voice: Voice, fps: int = 25):
    """Speech for n_frames video frames: (audio [640*T], per-frame tracks {mouth_open, mouth_width} [T], timeline)."""
    spf = SAMPLE_RATE // fps
    timeline = sample_timeline(rng, n_frames / fps, voice)
    audio, ctrl = synthesize(timeline, voice, n_frames * spf, rng)
    centres = (np.arange(n_frames) * spf + spf // 2) // BLOCK  # control step at each frame's centre
    per_frame = {k: ctrl[k][centres].astype(np.float32) for k in ("mouth_open", "mouth_width")}
    return audio, per_frame, timeline
