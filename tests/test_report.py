"""The HTML report: self-contained, renders in headless Chromium with no console errors and
every image loaded (or, where no browser can be installed, passes the pure-Python check)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgeth.report import ReportData, fmt, render_report
from edgeth.report.check import check_in_chromium, check_offline, find_chromium


@pytest.fixture(scope="module")
def chromium() -> str | None:
    """Debian's chromium; installed here when missing and we are root (CI on a fresh machine)."""
    path = find_chromium()
    if path:
        return path
    if os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True, timeout=240, env=env)
            subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, capture_output=True,
                           timeout=600, env=env)
        except (subprocess.SubprocessError, OSError) as e:
            print(f"chromium could not be installed ({e}); using the pure-Python render check")
            return None
        return find_chromium()
    print("chromium is missing and cannot be installed here (not root / no apt-get); using the pure-Python check")
    return None


def _data(T: int = 10, size: int = 32) -> ReportData:
    from edgeth.runtime_py.parity import per_frame_curve

    rng = np.random.default_rng(0)
    ref = rng.random((T, size, size, 3)).astype(np.float32)
    got = np.clip(ref + rng.normal(0, 0.02, ref.shape), 0, 1).astype(np.float32)
    curve = per_frame_curve(ref, got)
    return ReportData(
        model="ifmdm",
        summary=[{"target": "executorch", "precision": "int8", "status": "pass", "worst_psnr_db": curve["min_psnr_db"],
                  "speed_ratio": 2.1, "size_bytes": 5_000_000},
                 {"target": "coreml", "precision": "fp32", "status": "skipped", "reason": "runs only on macOS <&>"}],
        programs=[{"program": "renderer", "target": "executorch", "precision": "int8", "metrics": {"max_abs": 0.05},
                   "tolerance": {"max_abs": 0.1}, "passed": True, "errors": got - ref}],
        sequences=[{"label": "executorch int8", "psnr": curve["psnr_db"], "ssim": curve["ssim"],
                    "flow": rng.random(T - 2), "frames": got}],
        reference_frames=ref,
        tokens=[{"program": "codec", "label": "onnx fp32", "agreement": 0.995}],
        plans=[{"program": "denoiser", "target": "executorch", "precision": "mixed", "float_layers": ["blocks.0.attn"],
                "costs": {"blocks.0.attn": "rank 1: +3.1 dB"}}],
        delegation=[{"program": "renderer", "precision": "int8", "delegated": {"conv2d": 8},
                     "fallback": {"grid_sampler_2d": 2}}],
        provenance={"torch": "2.13.0"})


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    return render_report(_data(), tmp_path_factory.mktemp("report") / "report.html")


def test_report_is_self_contained_and_has_every_section(report):
    text = report.read_text()
    for heading in ("Summary", "Generated sequence", "Per-program error statistics", "Token agreement",
                    "Precision plans", "ExecuTorch delegation", "Tool versions"):
        assert heading in text, heading
    assert "runs only on macOS &lt;&amp;&gt;" in text  # text is escaped
    assert "http://" not in text and "https://" not in text
    res = check_offline(report)
    assert res.ok, res.problems
    assert res.images_total >= 6  # histogram, 3 curves, worst frame, animated strip


def test_report_renders_in_headless_chromium(report, chromium):
    if chromium is None:
        res = check_offline(report)  # the documented fallback: no browser on this machine
        print("render check: pure Python (no chromium)")
    else:
        res = check_in_chromium(report, chromium)
    assert res.problems == []
    assert res.images_total >= 6 and res.images_ok == res.images_total


def test_render_checks_catch_broken_pages(report, chromium, tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text(report.read_text().replace(
        "</body>", '<img src="http://example.invalid/x.png"><img src="data:image/png;base64,AAAA">'
                   "<script>console.error('boom')</script></body>"))
    off = check_offline(bad)
    assert not off.ok
    assert any("network reference" in p for p in off.problems)
    assert off.images_ok == off.images_total - 2
    if chromium is not None:
        res = check_in_chromium(bad, chromium)
        assert not res.ok
        assert any("boom" in p for p in res.problems)
        assert any("Content Security Policy" in p for p in res.problems)
        assert res.images_ok == res.images_total - 2


def test_fmt_numbers():
    assert fmt(None) == "n/a"
    assert fmt(float("inf")) == "inf"
    assert fmt(1e-5) == "1.00e-05"
    assert fmt(39.8213) == "39.82"
    assert fmt(1234567) == "1,234,567"
