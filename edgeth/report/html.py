"""The HTML parity report: one self-contained file (plots as data URIs, no network).

`ReportData` is the results structure `edgeth build` and `edgeth report` fill in;
`render_report(data, out)` turns it into HTML. Sections: summary table (target x
precision), per-program error statistics + histogram, per-frame PSNR / SSIM / Flow
Smoothness curves per backend against the PyTorch reference, side-by-side frames at the
worst frame, an animated strip (and links to mp4s), token agreement, the mixed-precision
plans, delegated vs fallback ops per ExecuTorch program, benchmark figures, provenance.

A Content-Security-Policy forbids every network fetch, and a tiny inline script records on
<body> how many images decoded (data-images-ok / data-images-total), which the headless
browser test reads back.

Shape legend: T frames, H/W image size; frames are [T, H, W, 3] float32 in [0, 1].
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeth.io_utils import atomic_path

CSP = ("default-src 'none'; img-src data:; media-src data:; style-src 'unsafe-inline'; "
       "script-src 'unsafe-inline'")

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
h3{font-size:1em;margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0;font-size:.88em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#176d20;font-weight:600}.fail{color:#b00020;font-weight:600}.skipped,.na{color:#777}
.grid{display:flex;flex-wrap:wrap;gap:1em}.card{border:1px solid #e2e2e2;padding:.5em;border-radius:4px}
code{background:#f5f5f5;padding:0 .2em}.small{font-size:.8em;color:#555}
"""

LOAD_CHECK = """
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }
  document.body.setAttribute('data-images-ok', String(ok));
  document.body.setAttribute('data-images-total', String(imgs.length));
  document.body.setAttribute('data-rendered', '1');
});
"""


@dataclass
class ReportData:
    """Everything the report shows. Arrays are optional: sections without data are omitted.

    summary rows: {target, precision, status: pass|fail|skipped|error, reason, worst_psnr_db,
      worst_frame, speed_ratio, size_bytes}
    programs rows: {program, target, precision, kind, metrics: {name: value},
      tolerance: {name: bound}, passed, errors: np.ndarray | None (backend - reference)}
    sequences rows: {label, target, precision, psnr: [T], ssim: [T], flow: [T'], frames:
      np [T,H,W,3] | None}; reference_frames is the PyTorch run they compare against.
    tokens rows: {program, label, agreement (0..1), per_layer (0..1 each, pipeline stages), first_diverging_frame}
    plans rows: {program, target, precision, float_layers: [...], costs: {layer: dB}, notes}
    delegation rows: {program, precision, delegated: {op: count}, fallback: {op: count}}
    videos rows: {label, href} (relative links to mp4s next to the report)
    """

    title: str = "edgeth parity report"
    model: str = ""
    summary: list[dict[str, Any]] = field(default_factory=list)
    programs: list[dict[str, Any]] = field(default_factory=list)
    sequences: list[dict[str, Any]] = field(default_factory=list)
    reference_frames: np.ndarray | None = None
    fps: int = 25
    tokens: list[dict[str, Any]] = field(default_factory=list)
    plans: list[dict[str, Any]] = field(default_factory=list)
    delegation: list[dict[str, Any]] = field(default_factory=list)
    bench: dict[str, Any] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    videos: list[dict[str, str]] = field(default_factory=list)
    psnr_threshold: float | None = None


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def fmt(x: Any, digits: int = 3) -> str:
    """Numbers for tables: None -> n/a, inf -> inf, small/large -> scientific."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    if isinstance(x, (float, np.floating)):
        v = float(x)
        if math.isnan(v):
            return "n/a"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.{digits - 1}e}"
        return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:.{max(digits - 1, 1)}f}"
    return str(x)


def fmt_bytes(n: Any) -> str:
    if n is None:
        return "n/a"
    n = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _status(s: Any) -> str:
    s = str(s or "n/a")
    cls = s if s in ("pass", "fail", "skipped") else "na"
    return f'<span class="{cls}">{_e(s)}</span>'


def _table(headers: list[str], rows: list[list[str]], num_cols: set[int] = frozenset()) -> str:
    """rows hold already-escaped HTML cells."""
    out = ["<table><thead><tr>", *(f"<th>{_e(h)}</th>" for h in headers), "</tr></thead><tbody>"]
    for r in rows:
        out.append("<tr>" + "".join(f'<td class="num">{c}</td>' if i in num_cols else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{_e(alt)}">'


def stage_note(stages: dict[str, dict[str, float]]) -> str:
    """"motion cosine 0.9993, indices agreement 1.000" for the non-video stages."""
    short = {"token_agreement": "agreement", "cosine": "cosine", "psnr_db": "PSNR"}
    parts = []
    for stage, m in stages.items():
        if stage == "frames":
            continue
        key = next((k for k in short if k in m), None)
        if key:
            parts.append(f"{stage} {short[key]} {fmt(m[key])}")
    return ", ".join(parts)


def summary_rows(summary: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    headers = ["target", "precision", "result", "gate 1: device = host", "gate 2: quality", "worst-frame PSNR (dB)",
               "other stages", "speed vs eager", "size", "note"]
    rows = []
    for r in summary:
        ratio = r.get("speed_ratio")
        gates = r.get("gates") or {}
        rows.append([_e(r.get("target", "")), _e(r.get("precision", "")), _status(r.get("status")),
                     _status(gates.get("runtime", "n/a")), _status(gates.get("quality", "n/a")),
                     _e(fmt(r.get("worst_psnr_db"))), _e(stage_note(r.get("stages") or {})),
                     _e(f"{ratio:.2f}x" if ratio else "n/a"), _e(fmt_bytes(r.get("size_bytes"))),
                     _e(r.get("reason", ""))])
    return headers, rows


def _section_summary(d: ReportData) -> str:
    if not d.summary:
        return "<h2>Summary</h2><p class='na'>no targets were built</p>"
    headers, rows = summary_rows(d.summary)
    return "<h2>Summary</h2>" + _table(headers, rows, {5, 7})


def _section_programs(d: ReportData) -> str:
    from edgeth.report import plots as rp

    if not d.programs:
        return ""
    metric_names: list[str] = []
    for r in d.programs:
        for k in r.get("metrics", {}):
            if k not in metric_names:
                metric_names.append(k)
    rows = []
    for r in d.programs:
        m = r.get("metrics", {})
        rows.append([_e(r["program"]), _e(r.get("target", "")), _e(r.get("precision", "")),
                     _status(r.get("runtime", "n/a")),
                     _status("pass" if r.get("passed") else ("fail" if r.get("passed") is False else "n/a")),
                     *(_e(fmt(m.get(k))) for k in metric_names)])
    parts = ["<h2>Per-program error statistics</h2>",
             "<p class='note'>gate 1: each program against its own artifact's host outputs (device = host); "
             "gate 2 and the figures: against the PyTorch FP32 reference.</p>",
             _table(["program", "target", "precision", "gate 1", "gate 2", *metric_names], rows,
                    set(range(5, 5 + len(metric_names)))),
             "<div class='grid'>"]
    for r in d.programs:
        if r.get("errors") is None:
            continue
        title = f"{r['program']} on {r.get('target', '')} {r.get('precision', '')}"
        tol = (r.get("tolerance") or {}).get("max_abs")
        parts.append(f"<div class='card'><h3>{_e(title)}</h3>"
                     + _img(rp.error_histogram(r["errors"], title, tol), f"error histogram {title}") + "</div>")
    parts.append("</div>")
    return "".join(parts)


def _section_sequences(d: ReportData) -> str:
    from edgeth.report import plots as rp

    seqs = [s for s in d.sequences if s.get("psnr") is not None]
    if not seqs:
        return ""
    parts = ["<h2>Generated sequence vs PyTorch reference</h2>"]
    for key, title, ylabel, thr in (("psnr", "Per-frame PSNR", "PSNR (dB)", d.psnr_threshold),
                                    ("ssim", "Per-frame SSIM", "SSIM", None),
                                    ("flow", "Flow Smoothness (per frame transition)", "flow smoothness", None)):
        series = {s["label"]: s[key] for s in seqs if s.get(key) is not None and len(s[key])}
        if series:
            parts.append(_img(rp.curves(series, title, ylabel, thr), title))
    rows = []
    for s in seqs:
        psnr = np.asarray(s["psnr"], dtype=np.float64)
        worst = int(np.nanargmin(psnr)) if psnr.size and np.isfinite(psnr).any() else 0
        ssim = s.get("ssim")
        rows.append([_e(s["label"]), _e(fmt(float(np.nanmin(psnr)) if psnr.size else None)), _e(worst),
                     _e(fmt(float(np.nanmean(np.where(np.isfinite(psnr), psnr, np.nan))) if psnr.size else None)),
                     _e(fmt(float(np.min(ssim)) if ssim is not None and len(ssim) else None))])
    parts.append(_table(["backend", "worst PSNR (dB)", "worst frame", "mean finite PSNR (dB)", "min SSIM"],
                        rows, {1, 2, 3, 4}))
    measured = sorted({s["measured"] for s in seqs if s.get("measured")})
    if measured:
        parts.append("<p class='note'>Measured once per backend (the summary's worst frame is the same value): "
                     + "; ".join(_e(m) for m in measured) + ".</p>")
    if d.reference_frames is not None:
        parts.append("<h3>Worst frame per backend: reference | backend | amplified difference</h3><div class='grid'>")
        for s in seqs:
            if s.get("frames") is None:
                continue
            psnr = np.asarray(s["psnr"], dtype=np.float64)
            worst = int(np.nanargmin(psnr)) if np.isfinite(psnr).any() else 0
            worst = min(worst, len(s["frames"]) - 1, len(d.reference_frames) - 1)
            label = f"{s['label']} (frame {worst})"
            parts.append("<div class='card'>" + _img(rp.side_by_side(d.reference_frames[worst], s["frames"][worst], label),
                                                      f"worst frame {label}") + "</div>")
        parts.append("</div>")
        rows_anim = {"reference": d.reference_frames}
        rows_anim.update({s["label"]: s["frames"] for s in seqs if s.get("frames") is not None})
        parts.append("<h3>Animated strip (" + _e(" | ".join(rows_anim)) + ")</h3>")
        parts.append(_img(rp.animated_strip(rows_anim, fps=d.fps, scale=2 if d.reference_frames.shape[1] <= 64 else 1),
                          "animated strip"))
    if d.videos:
        parts.append("<p>Videos: " + ", ".join(f'<a href="{_e(v["href"])}">{_e(v["label"])}</a>' for v in d.videos)
                     + "</p>")
    return "".join(parts)


def _section_tokens(d: ReportData) -> str:
    if not d.tokens:
        return ""
    rows = [[_e(t["program"]), _e(t["label"]), _e(f"{100 * float(t['agreement']):.2f} %"),
             _e(" / ".join(f"{100 * float(a):.1f}" for a in t.get("per_layer") or []) or "—"),
             _e("—" if t.get("first_diverging_frame") is None else str(t["first_diverging_frame"]))] for t in d.tokens]
    return "<h2>Token agreement</h2>" + _table(["program", "backend", "agreement", "per layer (%)",
                                                "first diverging frame"], rows, {2})


def _section_plans(d: ReportData) -> str:
    if not d.plans:
        return ""
    parts = ["<h2>Precision plans</h2>"]
    for p in d.plans:
        layers = list(p.get("float_layers") or [])
        costs = p.get("costs") or {}
        head = (f"<h3>{_e(p['program'])} — {_e(p.get('target', ''))} {_e(p.get('precision', ''))}: "
                f"{len(layers)} layer(s) kept float</h3>")
        parts.append(head)
        if layers:
            rows = [[f"<code>{_e(layer)}</code>", _e(fmt(costs.get(layer)))] for layer in layers]
            parts.append(_table(["layer kept float", "why it stayed float (measured cost)"], rows, {1}))
        other = {k: v for k, v in costs.items() if k not in layers}
        if other:
            rows = [[f"<code>{_e(k)}</code>", _e(fmt(v))] for k, v in sorted(other.items(), key=lambda kv: str(kv[0]))]
            parts.append("<details><summary>quantized layers and their measured cost</summary>"
                         + _table(["layer", "measured cost"], rows, {1}) + "</details>")
        if p.get("notes"):
            parts.append(f"<p class='small'>{_e(p['notes'])}</p>")
    return "".join(parts)


def _section_delegation(d: ReportData) -> str:
    if not d.delegation:
        return ""
    rows = []
    for r in d.delegation:
        dg, fb = r.get("delegated") or {}, r.get("fallback") or {}
        rows.append([_e(r["program"]), _e(r.get("precision", "")), _e(sum(dg.values())), _e(sum(fb.values())),
                     _e(", ".join(f"{k}×{v}" for k, v in sorted(fb.items())) or "—")])
    return ("<h2>ExecuTorch delegation (XNNPACK vs portable fallback)</h2>"
            + _table(["program", "precision", "delegated ops", "fallback ops", "fallback op kinds"], rows, {2, 3}))


def _section_bench(d: ReportData) -> str:
    from edgeth.bench import bench_table_rows

    if not d.bench:
        return ""
    headers, rows = bench_table_rows(d.bench)
    machine = d.bench.get("machine", {})
    note = (f"<p class='small'>Measured on {_e(machine.get('cpu', '?'))}, {_e(machine.get('threads', '?'))} thread(s); "
            f"matmul peak {_e(fmt(machine.get('peak_gflops')))} GFLOP/s. Ratios are against PyTorch eager FP32 "
            "in the same run (absolute times on shared machines are noise).</p>")
    return "<h2>Benchmark</h2>" + note + _table(headers, [[_e(c) for c in r] for r in rows],
                                                   set(range(2, len(headers))))


def _section_provenance(d: ReportData) -> str:
    if not d.provenance:
        return ""
    rows = []
    for k, v in sorted(d.provenance.items()):
        if isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in sorted(v.items()))
        rows.append([_e(k), f"<code>{_e(v)}</code>"])
    return "<h2>Tool versions and provenance</h2>" + _table(["what", "value"], rows)


def render_html(d: ReportData) -> str:
    body = [f"<h1>{_e(d.title)}</h1>",
            f"<p class='small'>model <code>{_e(d.model or '?')}</code>; every backend is compared with the "
            "PyTorch FP32 reference driven by the same recorded noise.</p>",
            _section_summary(d), _section_sequences(d), _section_programs(d), _section_tokens(d),
            _section_plans(d), _section_delegation(d), _section_bench(d), _section_provenance(d)]
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
            f"<title>{_e(d.title)}</title><style>{STYLE}</style>"
            f"<script>{LOAD_CHECK}</script></head><body>\n" + "\n".join(b for b in body if b) + "\n</body></html>\n")


def render_report(d: ReportData, out: str | Path) -> Path:
    """Write the report atomically; returns its path."""
    out = Path(out)
    text = render_html(d)
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return out
