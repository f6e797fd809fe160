"""Property-based fuzzing of every parser edgeth owns (hypothesis strategies + targets).

Each target takes one generated example and a scratch folder, feeds the example to a real
edgeth parser and returns an outcome: "ok", or the EdgethError subclass and its message
(digits and paths folded, so counts group by kind). Any other exception is a bug and
propagates. Targets:
  manifest     manifest.json bytes / a valid manifest with 1-3 random edits -> load_bundle's checks
  golden       a golden .npz with flipped/truncated bytes or odd arrays -> golden.load_npz + program_calls
  device-dump  DIR/<program>.npz with odd keys, shapes, dtypes, bytes -> device_outputs.read_program_dump
  audio        RIFF/WAVE files with lying headers, odd formats, truncation, noise -> data.video.read_audio
  junit        verify reports with arbitrary names, messages and metrics -> runtime_py.verify.write_junit
               (the XML must parse back with every case present)
  tokens       VQTalker .motion files: valid, damaged, or forged headers with a matching CRC32
               (huge frame counts, G x R beyond any config, payloads that disagree) -> codec.from_bytes
  polygraphy   golden calls of odd names, counts, dtypes, 0-d/empty shapes, NaN/inf values ->
               the TensorRT target's Polygraphy data writer + tolerance flags (files must load
               back equal with Polygraphy's own loaders; every bound finite)
tests/test_fuzz.py runs a few hundred examples each; benchmarks/fuzz.py 10,000+ and counts outcomes.
"""
from __future__ import annotations

import copy
import io
import json
import math
import re
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st

from edgeth.errors import EdgethError

JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats() | st.text(max_size=20),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
                    max_leaves=12)


def outcome(fn: Callable[[], Any]) -> str:
    try:
        fn()
    except EdgethError as e:
        what = re.sub(r"(?<![\w.])(/[^\s:'\"]+)+", "PATH", e.what)
        return f"{type(e).__name__}: {re.sub(r'[0-9]+', 'N', what)[:70]}"
    return "ok"


# -- manifest -------------------------------------------------------------------------------
def _slots(obj: Any, path=()) -> list[tuple]:
    out = [path]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _slots(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _slots(v, path + (i,))
    return out


@st.composite
def edited_json(draw, base: dict) -> dict:
    """`base` with 1-3 random edits: a value replaced, a key dropped or a key added."""
    m = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_slots(m)[1:]))
        parent = m
        for k in path[:-1]:
            parent = parent[k]
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if action == "drop" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(JSON)
        else:
            parent[path[-1]] = draw(JSON)
    return m


def manifest_examples(base: dict):
    return st.one_of(edited_json(base).map(lambda m: json.dumps(m).encode()),
                     st.binary(max_size=300), JSON.map(lambda v: json.dumps(v).encode()))


def manifest_target(bundle: Path) -> Callable[[bytes, Path], str]:
    """Parse manifest bytes as load_bundle does (schema, then its accessors), hashes skipped."""
    from edgeth.bundle.io import Bundle, read_manifest
    from edgeth.bundle.manifest import validate

    def run(data: bytes, work: Path) -> str:
        (work / "manifest.json").write_bytes(data)

        def parse():
            m = read_manifest(work)
            validate(m)
            b = Bundle(bundle, m, bundle)
            b.pipeline_spec()
            for name in b.program_names:
                b.specs(name)
                for tg in b.targets:
                    if tg in b.program(name)["artifacts"]:
                        b.entry(name, tg)
        return outcome(parse)
    return run


# -- golden vectors and device dumps ----------------------------------------------------------
ARRAYS = st.dictionaries(
    st.sampled_from(["in_x", "in_t", "out_eps", "out_frame", "out_frame_0", "out_frame_7", "frames", "junk", ""]),
    st.tuples(st.lists(st.integers(0, 4), max_size=5), st.sampled_from(["f4", "f8", "f2", "i4", "u1", "?", "c8"]))
    .map(lambda sd: np.zeros(sd[0], sd[1])), max_size=4)


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _damaged(data: bytes, draw) -> bytes:
    how = draw(st.sampled_from(["as-is", "truncate", "flip", "zip-odd-member"]))
    if how == "truncate" and data:
        return data[:draw(st.integers(0, len(data) - 1))]
    if how == "flip" and data:
        b = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
        return bytes(b)
    if how == "zip-odd-member":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr(draw(st.sampled_from(["../evil.npy", "/abs.npy", "a.npy", "x.txt"])), draw(st.binary(max_size=64)))
        return buf.getvalue()
    return data


@st.composite
def npz_examples(draw, valid: bytes | None = None) -> bytes:
    base = valid if valid is not None and draw(st.booleans()) else _npz_bytes(draw(ARRAYS))
    return _damaged(base, draw)


def golden_target(bundle: Path) -> Callable[[bytes, Path], str]:
    from edgeth.bundle import golden as G
    from edgeth.bundle.io import load_bundle

    b = load_bundle(bundle)
    name = b.program_names[0]
    ins, outs = b.specs(name)

    def run(data: bytes, work: Path) -> str:
        (work / "g.npz").write_bytes(data)
        return outcome(lambda: G.program_calls(G.load_npz(work / "g.npz"), [s.name for s in ins], [s.name for s in outs]))
    return run


def dump_target(bundle: Path) -> Callable[[bytes, Path], str]:
    from edgeth.bundle.io import load_bundle
    from edgeth.runtime_py.device_outputs import read_program_dump

    b = load_bundle(bundle)
    name = b.program_names[-1]
    _, outs = b.specs(name)
    n = len(b.golden_calls(name))

    def run(data: bytes, work: Path) -> str:
        (work / f"{name}.npz").write_bytes(data)
        return outcome(lambda: read_program_dump(work, name, outs, n))
    return run


# -- audio --------------------------------------------------------------------------------------
@st.composite
def wav_examples(draw) -> bytes:
    from reliability_support import wav_bytes

    fmt = draw(st.sampled_from([1, 3, 0xFFFE, 2, 0]))
    bits = draw(st.sampled_from([8, 16, 24, 32, 64, 0, 12]))
    ch = draw(st.sampled_from([1, 2, 6, 0]))
    rate = draw(st.sampled_from([16000, 44100, 8000, 1, 0, 3999, 2**31 - 1]))
    n = draw(st.integers(0, 3000))
    body = draw(st.sampled_from(["noise", "nan", "zeros"]))
    raw = (np.frombuffer(np.random.default_rng(n).bytes(n * 4), np.uint8) if body == "noise"
           else np.full(n, np.nan if body == "nan" else 0, "<f4").view(np.uint8))
    claim = draw(st.one_of(st.none(), st.integers(0, 2**32 - 1)))
    data = wav_bytes(raw, rate, fmt=fmt, bits=bits, channels=ch, data_bytes=claim)
    return _damaged(data, draw)


def audio_target() -> Callable[[bytes, Path], str]:
    from edgeth.data.video import read_audio

    def run(data: bytes, work: Path) -> str:
        (work / "a.wav").write_bytes(data)
        return outcome(lambda: read_audio(work / "a.wav"))
    return run


# -- motion token files (the VQTalker codec) -----------------------------------------------------
@st.composite
def token_streams(draw):
    """A valid TokenStream: small G, R, levels and frame count."""
    from edgeth.models.vqtalker.codec import TokenStream

    g, r, n = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 30))
    levels = tuple(draw(st.lists(st.integers(2, 8), min_size=1, max_size=4)))
    idx = draw(st.lists(st.integers(0, math.prod(levels) - 1), min_size=n * g * r, max_size=n * g * r))
    return TokenStream(np.asarray(idx, np.int32).reshape(n, g, r), levels, draw(st.sampled_from([25, 30, 1])))


@st.composite
def token_examples(draw) -> bytes:
    """A valid token file, a damaged one, or a forged header whose CRC32 matches (a hand-made or
    checksummed-but-wrong file reaches every header check): frame counts up to 2^32 - 1, G x R up
    to 255 x 255, levels 0-255, bits-per-frame and payload lengths that disagree."""
    from edgeth.models.vqtalker.codec import MAGIC, VERSION, to_bytes

    kind = draw(st.sampled_from(["valid", "damaged", "forged"]))
    if kind != "forged":
        data = to_bytes(draw(token_streams()))
        return data if kind == "valid" else _damaged(data, draw)
    head = MAGIC + struct.pack("<BBBB", draw(st.sampled_from([VERSION, 0, 255])), draw(st.integers(0, 255)),
                               draw(st.integers(0, 255)), 0)
    levels = bytes(draw(st.lists(st.integers(0, 255), max_size=12)))
    head = head[:-1] + bytes([len(levels)]) + levels
    body = head + struct.pack("<HIH", draw(st.integers(0, 65535)), draw(st.integers(0, 2**32 - 1)),
                              draw(st.integers(0, 65535))) + draw(st.binary(max_size=2048))
    return body + struct.pack("<I", zlib.crc32(body))


def token_target() -> Callable[[bytes, Path], str]:
    from edgeth.models.vqtalker.codec import from_bytes

    def run(data: bytes, work: Path) -> str:
        return outcome(lambda: from_bytes(data, "clip.motion"))
    return run


# -- the JUnit writer ------------------------------------------------------------------------------
CHECKS = st.lists(st.tuples(st.text(max_size=30), st.text(max_size=30), st.booleans(), st.booleans(),
                            st.dictionaries(st.text(max_size=8), st.floats() | st.integers() | st.text(max_size=8),
                                            max_size=3)), max_size=5)


def junit_examples():
    return st.tuples(st.text(max_size=20), CHECKS)


def junit_target() -> Callable[[tuple, Path], str]:
    import xml.etree.ElementTree as ET

    from edgeth.runtime_py.parity import Check
    from edgeth.runtime_py.verify import Report, write_junit

    def run(example: tuple, work: Path) -> str:
        backend, rows = example
        rep = Report("bundle", backend, [Check(n, m, p, w, skipped=s) for n, w, p, s, m in rows])

        def write():
            write_junit([rep], work / "j.xml")
            cases = ET.parse(work / "j.xml").getroot().findall(".//testcase")
            assert len(cases) == len(rows), (len(cases), len(rows))
        return outcome(write)
    return run


# -- the Polygraphy golden-data writer ---------------------------------------------------------------
_VALUES = st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 255.0, 1e-30, 1e30, 65504.0, np.nan, np.inf, -np.inf])


def _array(shape: list[int], dtype: str, values: list[float]) -> np.ndarray:
    v = np.resize(np.array(values), shape)
    if dtype not in ("f4", "f2", "f8"):
        v = np.nan_to_num(v, posinf=7, neginf=-7).clip(0, 200)
    with np.errstate(over="ignore"):  # 1e30 -> inf in float16 is one of the cases
        return v.astype(dtype)


_ARRAY = st.builds(_array, st.lists(st.integers(0, 3), max_size=4),
                   st.sampled_from(["f4", "f2", "f8", "i8", "i4", "u1", "?"]), st.lists(_VALUES, min_size=1, max_size=6))
_NAME = st.sampled_from(["x", "t", "audio", "frame", "eps", "tokens", "input.1", "out:0", "a b"]) | st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=0, max_size=8)


@st.composite
def polygraphy_examples(draw) -> tuple:
    """(precision, inputs [(name, [array per call])], outputs [(name, kind, [array per call])])."""
    calls = draw(st.sampled_from([1, 1, 1, 2, 2, 3, 0]))
    extra = draw(st.sampled_from([0] * 8 + [-1, 1]))  # sometimes one call too many or too few
    arrays = lambda n: [draw(_ARRAY) for _ in range(max(n, 0))]  # noqa: E731
    ins = [(draw(_NAME), arrays(calls)) for _ in range(draw(st.integers(1, 3)))]
    outs = [(draw(_NAME), draw(st.sampled_from(["frames", "image", "motion", "latent", "indices", "tensor"])),
             arrays(calls + extra)) for _ in range(draw(st.integers(1, 3)))]
    return draw(st.sampled_from(["fp32", "fp16", "int8", "int8-weights", "mixed"])), ins, outs


def polygraphy_target() -> Callable[[tuple, Path], str]:
    """write_data + tolerance_args: the files must load back with Polygraphy's own loaders, equal
    to what was written, and every bound must be a finite number Polygraphy can compare with."""
    from polygraphy.comparator import RunResults
    from polygraphy.json import load_json
    from polygraphy.logger import G_LOGGER

    from edgeth.targets.tensorrt.polygraphy_data import RUNNER, tolerance_args, write_data

    def same(a, b) -> bool:
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")

    def run(example: tuple, work: Path) -> str:
        precision, ins, outs = example
        n_calls = max((len(a) for _, a in ins), default=0)
        inputs = [[a[i] for _, a in ins] for i in range(n_calls)]
        outputs = [[a[i] for _, _, a in outs] for i in range(min(len(a) for _, _, a in outs))]

        def write():
            files = write_data(work, "prog", [n for n, _ in ins], [n for n, _, _ in outs], inputs, outputs)
            args = tolerance_args([(n, k) for n, k, _ in outs], precision, outputs)
            with G_LOGGER.verbosity(G_LOGGER.WARNING):
                feeds = load_json(str(work / files[0]))
                results = dict(RunResults.load(str(work / files[1])))[RUNNER]
            assert len(feeds) == len(inputs) and len(results) == len(outputs)
            for feed, call in zip(feeds, inputs):  # a later input of the same name wins, as in a feed dict
                for (name, _), a in reversed(list(zip(ins, call))):
                    assert name in feed
                assert all(same(feed[n], a) for n, a in dict(zip([n for n, _ in ins], call)).items())
            for res, call in zip(results, outputs):
                assert all(same(res[n], a) for n, a in dict(zip([n for n, _, _ in outs], call)).items())
            for flag, value in zip(args, args[1:]):
                if flag in ("--atol", "--rtol"):
                    bound = float(value.rsplit(":", 1)[1])
                    assert math.isfinite(bound) and bound >= 0, (flag, value)
        return outcome(write)
    return run
