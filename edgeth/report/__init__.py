"""The parity report: collect (verify + replay per backend) -> plots -> self-contained HTML -> render checks.

  collect.py  run_runnable / report_data: what each backend measured, each figure once
  plots.py    embedded SVG/PNG plots (per-frame curves, per-program bars)
  html.py     ReportData -> one HTML file (CSP, no external resources)
  check.py    headless-Chromium / pure-Python render checks
"""
from edgeth.report.html import ReportData, fmt, fmt_bytes, render_report  # noqa: F401
