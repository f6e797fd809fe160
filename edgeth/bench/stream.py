"""Streaming latency: what a viewer of a live avatar waits for, from a FrameStream's events.

One streamed run is timed as fast as the backend computes (all audio at hand); the same
sequence of compute is then replayed against speech that arrives in real time (chunk k is
complete when its last sample has been spoken), which needs no sleeping and no second run:

  first_frame_ms     first spoken sample -> first frame out, speech arriving in real time
  playback_delay_ms  the smallest delay after the first spoken sample at which frames can be
                     shown at the video's fps without ever stalling (>= first_frame_ms)
  worst_gap_ms       the longest wait between two consecutive frames, real-time speech
  rtf                real-time factor: compute seconds of the whole run (portrait, every window,
                     every frame) per second of video (< 1 keeps up with speech on average; a
                     clip of one window, or MDCF's global NAR, has no steady state to single out)
  compute_first_ms   first frame with all audio at hand (pure compute: portrait + window 0)

`measure_stream` is what `edgeth bench`, `edgeth run --stream` and benchmarks/realtime.py call.
"""
from __future__ import annotations

from typing import Any

import numpy as np

STREAM_KEYS = ("first_frame_ms", "playback_delay_ms", "worst_gap_ms", "rtf", "compute_first_ms")


def stream_figures(events: list[tuple], t0: float, sample_rate: int, fps: float) -> dict[str, Any]:
    """The figures above from FrameStream.events (started at perf_counter t0)."""
    clock, prev, received = 0.0, t0, 0
    paced: list[float] = []
    compute: list[float] = []
    for kind, _, a, b, n in events:
        clock += a - prev  # compute since the previous event
        if kind == "chunk":
            received += n
            clock = max(clock, received / sample_rate)  # waits for the chunk's last sample to be spoken
            prev = b  # the source's own wait is not compute
        else:
            paced.append(clock)
            compute.append(a - t0)
            prev = a
    if not paced:
        return {"frames": 0}
    n = len(paced)
    gaps = np.diff(paced) if n > 1 else np.zeros(1)
    return {"frames": n, "first_frame_ms": 1e3 * paced[0], "worst_gap_ms": 1e3 * float(gaps.max()),
            "playback_delay_ms": 1e3 * max(t - i / fps for i, t in enumerate(paced)),
            "rtf": compute[-1] / (n / fps),
            "compute_first_ms": 1e3 * compute[0], "compute_total_s": compute[-1]}


def measure_stream(pipe: Any, image: np.ndarray, audio: np.ndarray, chunk_ms: float = 200.0, **run: Any
                   ) -> tuple[np.ndarray, dict[str, Any]]:
    """Stream `audio` in chunk_ms chunks through a Pipeline: (frames [T, H, W, 3], figures).
    `run`: seed/noise and pipeline options, as for Pipeline.run."""
    from edgeth.runtime_py.stream import split_audio

    sr = int(pipe.spec.audio.get("sample_rate", 16000))
    frames_stream = pipe.stream(image, split_audio(audio, max(1, round(chunk_ms * sr / 1000))), **run)
    frames = np.stack(list(frames_stream))
    return frames, _figures(frames_stream, sr, pipe.spec.fps, chunk_ms)


def _figures(frames_stream: Any, sr: int, fps: float, chunk_ms: float) -> dict[str, Any]:
    """stream_figures + each program's share of the time spent in program calls."""
    figs = stream_figures(frames_stream.events, frames_stream.t0, sr, fps)
    spent = (frames_stream.result.extras or {}).get("timings_s") or {}
    total = sum(spent.values()) or 1.0
    return {"chunk_ms": chunk_ms, **figs, "shares": {k: round(v / total, 4) for k, v in spent.items()}}


def stream_wav(pipe: Any, image: np.ndarray, wav: Any, chunk_ms: float = 200.0, **run: Any) -> tuple[Any, dict]:
    """`edgeth run --stream`: a wav read progressively (edgeth.runtime_py.stream.wav_chunks)
    through a Pipeline -> (PipelineResult with every frame, figures)."""
    from edgeth.runtime_py.pipelines import PipelineResult
    from edgeth.runtime_py.stream import wav_chunks

    sr = int(pipe.spec.audio.get("sample_rate", 16000))
    frames_stream = pipe.stream(image, wav_chunks(wav, chunk_ms, sr), **run)
    frames = np.stack(list(frames_stream))
    res = frames_stream.result
    return PipelineResult(frames=frames, fps=res.fps, extras=res.extras), _figures(frames_stream, sr, pipe.spec.fps,
                                                                                  chunk_ms)


def stream_line(figs: dict[str, Any]) -> str:
    """One line for a terminal."""
    rtf = figs.get("rtf")
    return (f"first frame {figs['first_frame_ms']:.0f} ms after the first spoken sample "
            f"(compute {figs['compute_first_ms']:.0f} ms), smooth playback from {figs['playback_delay_ms']:.0f} ms, "
            f"worst gap {figs['worst_gap_ms']:.0f} ms, real-time factor {'n/a' if rtf is None else f'{rtf:.2f}'}")


def stream_table_markdown(result: dict[str, Any]) -> str:
    """The streaming rows of an edgeth.bench result (pipeline rows that carry `stream`)."""
    rows = [r for r in result.get("pipeline", []) if r.get("stream", {}).get("frames")]
    if not rows:
        return ""
    out = ["| backend | chunk ms | first frame ms | smooth playback from ms | worst gap ms | RTF | compute first ms |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["stream"]
        rtf = "n/a" if s.get("rtf") is None else f"{s['rtf']:.2f}"
        out.append(f"| {r['backend']} {r.get('precision', '')} | {s['chunk_ms']:.0f} | {s['first_frame_ms']:.0f} | "
                   f"{s['playback_delay_ms']:.0f} | {s['worst_gap_ms']:.0f} | {rtf} | {s['compute_first_ms']:.0f} |")
    return "\n".join(out)
