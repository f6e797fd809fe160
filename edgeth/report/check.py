"""Checks that a report renders: in headless Chromium when one is installed, else in pure Python.

Browser check: Chromium loads the file with `--dump-dom` and stderr logging; every page
console message (a CSP violation from a network fetch, a script error, a broken image) is
a problem, and the report's own load script must say every <img> decoded.

Pure-Python check (the documented fallback where no browser can be installed): the HTML
parses with balanced tags, every <img> is a data URI that Pillow decodes, and nothing
points at the network.
"""
from __future__ import annotations

import base64
import binascii
import io
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000")
_CONSOLE = re.compile(r":CONSOLE(?:\(\d+\)|:\d+)\]\s*(.*)")
_BODY = re.compile(r"<body([^>]*)>", re.I)
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class RenderCheck:
    method: str  # "chromium" | "python"
    images_total: int = 0
    images_ok: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.images_ok == self.images_total


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        p = shutil.which(name)
        if p:
            return p
    return None


def check_in_chromium(html_path: str | Path, chromium: str, timeout: float = 90.0) -> RenderCheck:
    """Render with headless Chromium; console messages and undecoded images are problems."""
    url = Path(html_path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="edgeth-chromium-") as profile:
        proc = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                              capture_output=True, text=True, timeout=timeout)
    res = RenderCheck("chromium")
    res.problems += [f"console: {m.group(1)}" for m in map(_CONSOLE.search, proc.stderr.splitlines()) if m]
    body = _BODY.search(proc.stdout)
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1))) if body else {}
    if proc.returncode != 0:
        res.problems.append(f"chromium exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    if attrs.get("data-rendered") != "1":
        res.problems.append("the page's load handler did not run (no data-rendered on <body>)")
    res.images_total = int(attrs.get("data-images-total", 0))
    res.images_ok = int(attrs.get("data-images-ok", 0))
    if res.images_ok != res.images_total:
        res.problems.append(f"{res.images_total - res.images_ok} of {res.images_total} images did not load")
    return res


class _Parser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.images: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src") or "")
        for key in ("src", "href"):
            v = (a.get(key) or "").strip().lower()
            if v.startswith(("http:", "https:", "//", "ftp:", "ws:", "wss:")):
                self.external.append(f"<{tag} {key}={a.get(key)}>")
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"unbalanced </{tag}> (open: {self.stack[-3:]})")
            if tag in self.stack:
                while self.stack and self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()


def decode_data_uri(uri: str) -> bytes:
    m = re.match(r"data:([\w/+.-]+);base64,(.*)$", uri, re.S)
    if not m:
        raise ValueError(f"not a base64 data URI: {uri[:40]!r}")
    return base64.b64decode(m.group(2), validate=True)


def check_offline(html_path: str | Path) -> RenderCheck:
    """Pure-Python rendering check (no browser)."""
    from PIL import Image

    text = Path(html_path).read_text(encoding="utf-8")
    p = _Parser()
    p.feed(text)
    p.close()
    res = RenderCheck("python", images_total=len(p.images))
    res.problems += p.problems
    if p.stack:
        res.problems.append(f"unclosed tags at end: {p.stack}")
    res.problems += [f"network reference: {x}" for x in p.external]
    if "Content-Security-Policy" not in text:
        res.problems.append("no Content-Security-Policy meta tag")
    for i, src in enumerate(p.images):
        try:
            with Image.open(io.BytesIO(decode_data_uri(src))) as im:
                im.load()
            res.images_ok += 1
        except (ValueError, binascii.Error, OSError) as e:
            res.problems.append(f"image {i} does not decode: {e}")
    return res


def check_report(html_path: str | Path, chromium: str | None = None) -> RenderCheck:
    """Chromium when given or found, else the pure-Python check."""
    chromium = chromium or find_chromium()
    return check_in_chromium(html_path, chromium) if chromium else check_offline(html_path)
