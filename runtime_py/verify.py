"""Verify a bundle against its golden vectors: on a backend here, or from outputs dumped on a device.

Checks, each judged by the tolerances copied into the manifest:
  program/<program>/<output>   every golden call of every program, run on the backend
                               (the check keeps the worst call; detail.call names it)
  pipeline/<stage>             the whole pipeline replayed with the golden input and the
                               recorded noise: each stage the reference recorded (e.g.
                               motion) and the video, as a per-frame PSNR/SSIM curve whose
                               worst frame must meet the `frames` tolerance

`Report.passed` is true only when every check passes; `to_json()` and `write_junit(path)`
feed CI systems. Device dumps: see edgeth.runtime_py.device_outputs.
"""
from __future__ import annotations

import json
import math
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

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def to_json(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "backend": self.backend, "passed": self.passed,
                "checks": [c.to_json() for c in self.checks], "seconds": round(self.seconds, 3)}

    def lines(self) -> list[str]:
        out = []
        for c in self.checks:
            mark = "skip" if c.skipped else ("ok  " if c.passed else "FAIL")
            out.append(f"{mark} {c.name:<40} {c.worst}")
        n_fail = len(self.failures)
        out.append(f"{'PASSED' if not n_fail else 'FAILED'}: {len(self.checks) - n_fail}/{len(self.checks)} checks "
                   f"passed on {_label(self.backend)} ({self.seconds:.1f} s)")
        return out

    def junit_suite(self) -> ET.Element:
        """One JUnit <testsuite>, one <testcase> per check."""
        suite = ET.Element("testsuite", name=f"edgeth verify {_label(self.backend)}", tests=str(len(self.checks)),
                           failures=str(len(self.failures)), errors="0",
                           skipped=str(sum(c.skipped for c in self.checks)), time=f"{self.seconds:.3f}")
        for c in self.checks:
            cls, _, name = c.name.rpartition("/")
            case = ET.SubElement(suite, "testcase", classname=f"edgeth.{_slug(self.backend)}.{cls.replace('/', '.') or 'bundle'}",
                                 name=name or c.name, time="0")
            metrics = json.dumps(c.to_json()["metrics"])
            if c.skipped:
                ET.SubElement(case, "skipped", message=c.worst)
            elif not c.passed:
                ET.SubElement(case, "failure", message=c.worst, type="ParityError").text = metrics
            ET.SubElement(case, "system-out").text = metrics
        return suite


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
                    got_calls: list[list[np.ndarray]], calls: list | None = None) -> list[Check]:
    """One check per output over all golden calls (keeps the worst call)."""
    calls = bundle.golden_calls(program) if calls is None else calls
    checks = []
    for j, (out_name, kind) in enumerate(output_kinds(bundle, program)):
        tol = bundle.tolerance(program, out_name, target)
        per_call = []
        for i, ((_, ref_outs), got) in enumerate(zip(calls, got_calls)):
            c = compare(kind, ref_outs[j], got[j], tol, name=f"program/{program}/{out_name}")
            c.detail["call"] = i
            per_call.append(c)
        w = worst_of(per_call)
        w.detail["calls"] = len(per_call)
        if len(calls) > 1:
            w.worst = f"{w.worst} (call {w.detail['call']} of {len(calls)})"
        checks.append(w)
    return checks


def verify_programs(bundle, call, target: str | None, progress: bool = False) -> list[Check]:
    from tqdm import tqdm

    checks = []
    for name in tqdm(bundle.program_names, desc="programs", unit="program", disable=not progress, leave=False):
        calls = bundle.golden_calls(name)
        got = [call(name, list(ins)) for ins, _ in calls]
        checks += compare_program(bundle, name, target, got, calls)
    return checks


def stage_kind(name: str) -> str:
    from edgeth.program import TENSOR_KINDS

    return name if name in TENSOR_KINDS else "tensor"


def compare_stages(bundle, target: str | None, frames: np.ndarray | None, extras: dict[str, Any],
                   prefix: str = "pipeline") -> list[Check]:
    """Per-stage checks of a pipeline run against golden/pipeline.npz."""
    from edgeth.bundle.golden import split_pipeline

    g = bundle.pipeline_golden()
    _, ref_extras = split_pipeline(g)
    checks = []
    for k, ref in sorted(ref_extras.items()):
        if k in extras:
            checks.append(compare(stage_kind(k), ref, np.asarray(extras[k]), bundle.stage_tolerance(stage_kind(k), target),
                                  name=f"{prefix}/{k}"))
    if frames is not None:
        checks.append(compare_frames(g["frames"], np.asarray(frames), bundle.stage_tolerance("frames", target),
                                     name=f"{prefix}/frames"))
    return checks


def verify_pipeline(bundle, backend: str, threads: int | None = None, progress: bool = False,
                    call: Any = None) -> list[Check]:
    from edgeth.runtime_py.backends import target_for_backend
    from edgeth.runtime_py.pipeline import Pipeline

    result = Pipeline(bundle, backend, threads, call=call).run_golden(progress=progress)
    return compare_stages(bundle, target_for_backend(backend), result.frames, result.extras)


def verify_bundled_programs(bundle, target: str) -> list[Check]:
    """ExecuTorch only: run the golden cases embedded in each `<program>.bpte` with the runtime's
    own BundledProgram verifier (what an app can do on the phone without edgeth)."""
    if target != "executorch":
        return []
    from edgeth.targets.executorch import verify_bundled

    checks = []
    for name in bundle.program_names:
        art = bundle.program(name)["artifacts"].get(target, {})
        bpte = [f for f in art.get("files", []) if f.endswith(".bpte")]
        if not bpte:
            continue
        if art.get("precision", "fp32") != "fp32":
            # The embedded cases hold FP32 goldens and the BundledProgram verifier only knows
            # elementwise rtol/atol; quantized artifacts are judged by their PSNR/cosine
            # tolerances in the program and pipeline checks instead.
            continue
        out_names = [s["name"] for s in bundle.program(name)["outputs"]]
        atol = min(bundle.tolerance(name, o, target).get("max_abs", 1e-4) for o in out_names)
        ok = verify_bundled(bundle.artifact_dir(target) / bpte[0], rtol=1e-5, atol=atol)
        bad = [i for i, v in enumerate(ok) if not v]
        checks.append(Check(f"bundled/{name}", {"cases": len(ok), "failed": len(bad)}, bool(ok) and not bad,
                            f"{len(ok) - len(bad)}/{len(ok)} BundledProgram cases within atol {atol:g}"
                            + (f"; failing cases {bad}" if bad else ""), {"atol": atol, "rtol": 1e-5}))
    return checks


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
    if programs:
        rep.checks += verify_programs(bundle, call, target_for_backend(backend), progress)
        rep.checks += verify_bundled_programs(bundle, target_for_backend(backend))
        rep.checks += verify_structure(bundle, target_for_backend(backend))
    if pipeline:
        rep.checks += verify_pipeline(bundle, backend, threads, progress, call=call)
    rep.seconds = time.perf_counter() - t0
    return rep
