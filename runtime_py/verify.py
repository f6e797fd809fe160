"""Verify a bundle against its golden vectors: on a backend here, or from outputs dumped on a device.

Checks, in two gates (edgeth.runtime_py.gates; bounds in edgeth/tolerances.py):
  runtime/<program>/<output>   gate 1: every golden call of every program, run on the
                               backend, against that artifact's own host outputs (tight)
  runtime/bundled/<program>    gate 1: ExecuTorch's BundledProgram verifier on the .bpte
  quality/<program>/<output>   gate 2: the same calls against the FP32 reference
                               (each check keeps the worst call; detail.call names it)
  quality/pipeline/<stage>     gate 2: the whole pipeline replayed with the golden input and
                               the recorded noise: each stage the reference recorded (e.g.
                               motion) and the video, as a per-frame PSNR/SSIM curve whose
                               worst frame must meet the bundle's budget; a stage of kind
                               "indices" also carries detail.tokens (agreement per group and
                               residual layer, first diverging frame, near-boundary counts)

`Report.passed` is true only when every check passes; `to_json()` and `write_junit(path)`
feed CI systems. Device dumps: see edgeth.runtime_py.device_outputs.
"""
from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeth.runtime_py.parity import Check, compare, compare_frames


@dataclass
class Report:
    bundle: str
    backend: str
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # e.g. why gate 1 was not checked

    @property
    def gates(self) -> dict[str, str]:
        """{"runtime": pass|fail|n/a, "quality": ...}: which gate failed (edgeth.runtime_py.gates)."""
        from edgeth.runtime_py.gates import gate_status

        return gate_status(self.checks)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def to_json(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "backend": self.backend, "passed": self.passed,
                "gates": self.gates, "notes": list(self.notes),
                "checks": [c.to_json() for c in self.checks], "seconds": round(self.seconds, 3)}

    def lines(self) -> list[str]:
        out = []
        for c in self.checks:
            mark = "skip" if c.skipped else ("ok  " if c.passed else "FAIL")
            out.append(f"{mark} {c.name:<40} {c.worst}")
        out += self.notes
        n_fail = len(self.failures)
        g = self.gates
        out.append(f"{'PASSED' if not n_fail else 'FAILED'}: {len(self.checks) - n_fail}/{len(self.checks)} checks "
                   f"passed on {_label(self.backend)} ({self.seconds:.1f} s); gate 1 (runtime) {g['runtime']}, "
                   f"gate 2 (quality) {g['quality']}")
        return out

    def junit_suite(self) -> ET.Element:
        """One JUnit <testsuite>, one <testcase> per check."""
        suite = ET.Element("testsuite", name=_xml_text(f"edgeth verify {_label(self.backend)}"), tests=str(len(self.checks)),
                           failures=str(len(self.failures)), errors="0",
                           skipped=str(sum(c.skipped for c in self.checks)), time=f"{self.seconds:.3f}")
        for c in self.checks:
            cls, _, name = _xml_text(c.name).rpartition("/")
            case = ET.SubElement(suite, "testcase", classname=f"edgeth.{_slug(self.backend)}.{cls.replace('/', '.') or 'bundle'}",
                                 name=name or _xml_text(c.name), time="0")
            metrics = _xml_text(json.dumps(c.to_json()["metrics"]))
            if c.skipped:
                ET.SubElement(case, "skipped", message=_xml_text(c.worst))
            elif not c.passed:
                ET.SubElement(case, "failure", message=_xml_text(c.worst), type="ParityError").text = metrics
            ET.SubElement(case, "system-out").text = metrics
        return suite


_XML_BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(s: str) -> str:
    """Text XML 1.0 can hold: characters it forbids (control codes, lone surrogates) become U+FFFD."""
    return _XML_BAD.sub("\ufffd", str(s))


def _label(backend: str) -> str:
    from edgeth.runtime_py.backends import backend_label

    return backend_label(backend)


def _slug(s: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in s).strip("_")


def write_junit(reports: list[Report], path: str | Path) -> Path:
    """JUnit XML for CI: <testsuites> with one suite per report (per backend)."""
    from edgeth.io_utils import atomic_path

    root = ET.Element("testsuites", name="edgeth verify",
                      tests=str(sum(len(r.checks) for r in reports)),
                      failures=str(sum(len(r.failures) for r in reports)))
    for r in reports:
        root.append(r.junit_suite())
    ET.indent(root)
    with atomic_path(path) as tmp:
        ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
    return Path(path)


def reports_json(reports: list[Report]) -> dict[str, Any]:
    return {"passed": all(r.passed for r in reports), "reports": [r.to_json() for r in reports]}


def output_kinds(bundle, program: str) -> list[tuple[str, str]]:
    """[(output name, kind)] of a program, in manifest order."""
    return [(s["name"], s.get("kind", "tensor")) for s in bundle.program(program)["outputs"]]


def worst_of(checks: list[Check]) -> Check:
    """The failing check if any, else the one with the largest max_abs (or lowest agreement)."""
    failing = [c for c in checks if not c.passed]
    if failing:
        return failing[0]

    def badness(c: Check) -> float:
        m = c.metrics
        if "max_abs" in m:
            return m["max_abs"]
        if "token_agreement" in m:
            return 1 - m["token_agreement"]
        return -m.get("psnr_db", math.inf)

    return max(checks, key=badness)


def compare_program(bundle, program: str, target: str | None,
                    got_calls: list, calls: list | None = None) -> list[Check]:
    """Both gates per output over all golden calls (each check keeps its worst call):
    runtime/<program>/<output> against the artifact's own host outputs, when recorded, and
    quality/<program>/<output> against the FP32 reference (edgeth.runtime_py.gates).
    `got_calls[i]` may be None for a call a device did not dump."""
    from edgeth.runtime_py.gates import program_checks

    calls = bundle.golden_calls(program) if calls is None else calls
    return program_checks(bundle, program, target, got_calls, calls)


def verify_programs(bundle, call, target: str | None, progress: bool = False) -> list[Check]:
    from tqdm import tqdm

    checks = []
    for name in tqdm(bundle.program_names, desc="programs", unit="program", disable=not progress, leave=False):
        calls = bundle.golden_calls(name)
        got = [call(name, list(ins)) for ins, _ in calls]
        checks += compare_program(bundle, name, target, got, calls)
    return checks


def compare_stages(bundle, target: str | None, frames: np.ndarray | None, extras: dict[str, Any],
                   prefix: str = "quality/pipeline") -> list[Check]:
    """Per-stage checks of a pipeline run against golden/pipeline.npz: gate 2, each stage judged
    by the bundle's budget for it (its "broken export" floor noted beside)."""
    from edgeth.bundle.golden import split_pipeline
    from edgeth.runtime_py.gates import stage_quality_tolerance, with_floor

    g = bundle.pipeline_golden()
    _, ref_extras = split_pipeline(g)
    spec = bundle.pipeline_spec()
    checks = []
    for k, ref in sorted(ref_extras.items()):
        if k in extras:
            c = compare(spec.stage_kind(k), ref, np.asarray(extras[k]), stage_quality_tolerance(bundle, k, target),
                        name=f"{prefix}/{k}")
            if spec.stage_kind(k) == "indices" and c.metrics:
                token_detail(bundle, k, ref, np.asarray(extras[k]), c)
            checks.append(with_floor(c, bundle.stage_tolerance(k, target)))
    if frames is not None:
        c = compare_frames(g["frames"], np.asarray(frames), stage_quality_tolerance(bundle, "frames", target),
                           name=f"{prefix}/frames")
        checks.append(with_floor(c, bundle.stage_tolerance("frames", target)))
    return checks


def token_detail(bundle, stage: str, ref: np.ndarray, got: np.ndarray, check: Check) -> None:
    """detail.tokens of an indices stage: agreement per group / residual layer, the first
    diverging frame and near-boundary counts (edgeth.runtime_py.token_parity)."""
    from edgeth.runtime_py.token_parity import stage_token_detail

    check.detail["tokens"] = d = stage_token_detail(bundle, stage, ref, got)
    if d["first_diverging_frame"] is not None:
        check.worst += f"; first diverging frame {d['first_diverging_frame']}"


def verify_pipeline(bundle, backend: str, threads: int | None = None, progress: bool = False,
                    call: Any = None) -> list[Check]:
    from edgeth.runtime_py.backends import target_for_backend
    from edgeth.runtime_py.pipeline import Pipeline

    result = Pipeline(bundle, backend, threads, call=call).run_golden(progress=progress)
    return compare_stages(bundle, target_for_backend(backend), result.frames, result.extras)


def verify_bundled_programs(bundle, target: str) -> list[Check]:
    """ExecuTorch only: run the golden cases embedded in each `<program>.bpte` with the runtime's
    own BundledProgram verifier (what an app can do on the phone without edgeth). Gate 1: a
    non-FP32 .bpte embeds the artifact's own host outputs, checked within its RUNTIME bound."""
    if target != "executorch":
        return []
    from edgeth.runtime_py.gates import bundled_atol
    from edgeth.targets.executorch import verify_bundled

    checks = []
    for name in bundle.program_names:
        art = bundle.program(name)["artifacts"].get(target, {})
        bpte = [f for f in art.get("files", []) if f.endswith(".bpte")]
        if not bpte:
            continue
        if art.get("precision", "fp32") != "fp32" and not art.get("expected"):
            # exported before gate 1: the embedded cases hold FP32 goldens, which a quantized
            # program meets only within its quality budget, not elementwise
            continue
        atol = bundled_atol(bundle, name, target)
        ok = verify_bundled(bundle.artifact_dir(target) / bpte[0], rtol=1e-5, atol=atol)
        bad = [i for i, v in enumerate(ok) if not v]
        checks.append(Check(f"runtime/bundled/{name}", {"cases": len(ok), "failed": len(bad)}, bool(ok) and not bad,
                            f"{len(ok) - len(bad)}/{len(ok)} BundledProgram cases within atol {atol:g}"
                            + (f"; failing cases {bad}" if bad else ""), {"atol": atol, "rtol": 1e-5}))
    return checks


def _gate1_notes(bundle, target: str | None, backend: str | None = None) -> list[str]:
    from edgeth.runtime_py.gates import gate1_note

    note = gate1_note(bundle, target, backend=backend)
    return [note] if note else []


def verify_structure(bundle, target: str | None) -> list[Check]:
    """Core ML only: structure/<program> checks (spec, I/O vs manifest, ops vs deployment
    target, weight hashes) that need no Core ML runtime (edgeth.targets.coreml.sim.structure)."""
    if target != "coreml":
        return []
    from edgeth.targets.coreml.sim import structure_checks

    return structure_checks(bundle)


def verify_bundle(bundle, backend: str = "torch", *, threads: int | None = None, programs: bool = True,
                  pipeline: bool = True, progress: bool = False) -> Report:
    """Run every golden call and the golden pipeline on `backend`; compare with tolerances."""
    import time

    from edgeth.bundle.io import Bundle, load_bundle
    from edgeth.runtime_py.backends import program_call, target_for_backend

    t0 = time.perf_counter()
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    rep = Report(str(bundle.source), backend)
    call = program_call(bundle, backend, threads)  # raises if the backend cannot run here
    rep.notes += _gate1_notes(bundle, target_for_backend(backend), backend)
    if programs:
        rep.checks += verify_programs(bundle, call, target_for_backend(backend), progress)
        rep.checks += verify_bundled_programs(bundle, target_for_backend(backend))
        rep.checks += verify_structure(bundle, target_for_backend(backend))
    if pipeline:
        rep.checks += verify_pipeline(bundle, backend, threads, progress, call=call)
    rep.seconds = time.perf_counter() - t0
    return rep
