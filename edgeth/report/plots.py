"""Plots for the HTML parity report, each returned as an embeddable `data:` URI.

Everything is drawn with matplotlib's Agg backend (no display, no network) and encoded as
PNG (or GIF for the animated strip) so the report stays one self-contained file.

Shape legend: T frames, H/W image size, 3 RGB channels; frames are float32 in [0, 1].
"""
from __future__ import annotations

import base64
import io
from typing import Sequence

import numpy as np

from edgeth.data.video import to_uint8  # one float->uint8 conversion for video and report

# Plot sizes in inches at DPI; small on purpose: a report with 4 targets x 3 precisions
# stays a few MB.
DPI = 90
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _fig_to_uri(fig) -> str:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_uri(rgb: np.ndarray) -> str:
    """An [H, W, 3] float image in [0, 1] (or uint8) as a PNG data URI."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(to_uint8(rgb)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def error_histogram(errors: np.ndarray, title: str, tolerance: float | None = None) -> str:
    """Histogram of |backend - reference| over all elements (log count axis)."""
    plt = _plt()
    e = np.abs(np.asarray(errors, dtype=np.float64)).ravel()
    fig, ax = plt.subplots(figsize=(4.2, 2.4))
    if e.size and e.max() > 0:
        lo = max(float(e[e > 0].min()) if (e > 0).any() else 1e-12, 1e-12)
        bins = np.logspace(np.log10(lo), np.log10(float(e.max())) + 1e-9, 40)
        ax.hist(e[e > 0], bins=bins, color=PALETTE[0])
        ax.set_xscale("log")
        zeros = int((e == 0).sum())
        if zeros:
            ax.text(0.99, 0.95, f"{zeros} exact", transform=ax.transAxes, ha="right", va="top", fontsize=7)
    else:
        ax.text(0.5, 0.5, "all errors are exactly 0", ha="center", va="center", transform=ax.transAxes)
    if tolerance:
        ax.axvline(tolerance, color=PALETTE[1], ls="--", lw=1, label=f"max_abs tol {tolerance:g}")
        ax.legend(fontsize=7)
    ax.set_yscale("log")
    ax.set_xlabel("|error|", fontsize=8)
    ax.set_ylabel("count", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    return _fig_to_uri(fig)


def curves(series: dict[str, Sequence[float]], title: str, ylabel: str, threshold: float | None = None) -> str:
    """Per-frame metric curves, one line per backend label."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 2.6))
    for i, (label, ys) in enumerate(series.items()):
        y = np.asarray(ys, dtype=np.float64)
        y = np.where(np.isfinite(y), y, np.nan)
        ax.plot(np.arange(len(y)), y, lw=1.2, color=PALETTE[i % len(PALETTE)], label=label)
    if threshold is not None:
        ax.axhline(threshold, color="#555555", ls="--", lw=0.8, label=f"threshold {threshold:g}")
    ax.set_xlabel("frame", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    if series:
        ax.legend(fontsize=7, ncol=2)
    return _fig_to_uri(fig)


def side_by_side(reference: np.ndarray, backend: np.ndarray, label: str, amplify: float | None = None) -> str:
    """reference | backend | amplified |difference| heatmap for one frame."""
    plt = _plt()
    ref = np.asarray(reference, dtype=np.float32)
    got = np.asarray(backend, dtype=np.float32)
    diff = np.abs(got - ref).mean(axis=-1)
    peak = float(diff.max())
    if amplify is None:
        amplify = 1.0 / peak if peak > 0 else 1.0
    fig, axes = plt.subplots(1, 3, figsize=(7.2, 2.6))
    axes[0].imshow(np.clip(ref, 0, 1))
    axes[0].set_title("reference (PyTorch)", fontsize=8)
    axes[1].imshow(np.clip(got, 0, 1))
    axes[1].set_title(label, fontsize=8)
    im = axes[2].imshow(np.clip(diff * amplify, 0, 1), cmap="inferno", vmin=0, vmax=1)
    axes[2].set_title(f"|diff| x{amplify:.3g} (max {peak:.2g})", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.04).ax.tick_params(labelsize=6)
    return _fig_to_uri(fig)


def animated_strip(rows: dict[str, np.ndarray], fps: int = 25, max_frames: int = 50, scale: int = 1) -> str:
    """An animated GIF with one row per label ([T, H, W, 3] each), side by side, as a data URI."""
    from PIL import Image

    seqs = [to_uint8(v) for v in rows.values()]
    if not seqs:
        raise ValueError("animated_strip needs at least one sequence")
    t = min(min(len(s) for s in seqs), max_frames)
    frames = []
    for i in range(t):
        row = np.concatenate([s[i] for s in seqs], axis=1)  # side by side: [H, W * n, 3]
        if scale > 1:
            row = row.repeat(scale, axis=0).repeat(scale, axis=1)
        frames.append(Image.fromarray(row))
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:],
                   duration=max(int(1000 / max(fps, 1)), 20), loop=0)
    return "data:image/gif;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def bar_chart(values: dict[str, float], title: str, xlabel: str, ref_line: float | None = None) -> str:
    """Horizontal bars (e.g. speed ratio per target x precision)."""
    plt = _plt()
    labels = list(values)
    vals = [float(values[k]) if values[k] is not None else 0.0 for k in labels]
    fig, ax = plt.subplots(figsize=(5.0, 0.3 * max(len(labels), 2) + 0.8))
    ax.barh(labels, vals, color=PALETTE[0])
    if ref_line is not None:
        ax.axvline(ref_line, color=PALETTE[1], ls="--", lw=1)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    return _fig_to_uri(fig)
