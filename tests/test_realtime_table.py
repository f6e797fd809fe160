"""benchmarks/realtime.py --readme: a run of some families keeps the other families' rows of the
README's table only when that table says the same machine and settings (issue 15: each family's
rows are one side-by-side run; a family measured later joins without re-measuring the others)."""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest


def _realtime():
    spec = importlib.util.spec_from_file_location(
        "realtime", Path(__file__).resolve().parent.parent / "benchmarks" / "realtime.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(fam: str, backend: str, fps: float) -> dict:
    return {"model": fam, "preset": "mobile", "backend": backend, "precision": "fp32", "fps": fps, "vs_eager": 1.0,
            "worst_psnr_db": None, "size_mb": 1.0, "stream": {}, "shares": {"renderer": 1.0}}


def _args(**kw) -> argparse.Namespace:
    d = dict(sampler_steps=10, size=256, train_steps=150, quantize_only="renderer", calib_clips=2)
    return argparse.Namespace(**{**d, **kw})


def test_a_later_family_joins_the_table_and_a_remeasured_one_replaces_its_rows():
    rt = _realtime()
    machine, settings = "Xeon (2 cores, 2 threads)", rt.settings_text(_args())
    order = ["ifmdm", "mdcf", "vqtalker"]
    old = rt.table([_row("ifmdm", "torch", 30.0), _row("ifmdm", "executorch", 45.0), _row("mdcf", "torch", 20.0)])
    old_block = old + f"\n\nMeasured on {machine}, Linux; {settings}, each family's rows measured side by side in one run."
    text, kept = rt.merge_rows(old_block, rt.table([_row("vqtalker", "torch", 12.0)]), ["vqtalker"], order, machine,
                               settings)
    fams = [rt._family(ln) for ln in text.splitlines()[2:]]
    assert kept == ["ifmdm", "mdcf"] and fams == ["ifmdm", "ifmdm", "mdcf", "vqtalker"]
    assert "| 45.0 |" in text and "| 12.0 |" in text
    # re-measuring ifmdm drops its old rows and keeps mdcf's, in registry order
    text, kept = rt.merge_rows(old_block, rt.table([_row("ifmdm", "torch", 31.0)]), ["ifmdm"], order, machine, settings)
    assert kept == ["mdcf"] and [rt._family(ln) for ln in text.splitlines()[2:]] == ["ifmdm", "mdcf"]
    assert "| 45.0 |" not in text and "| 31.0 |" in text


def test_rows_measured_with_other_settings_or_elsewhere_are_not_mixed_in():
    rt = _realtime()
    machine, settings = "Xeon (2 cores, 2 threads)", rt.settings_text(_args())
    old_block = rt.table([_row("ifmdm", "torch", 30.0)]) + f"\n\nMeasured on {machine}; {settings}."
    new = rt.table([_row("vqtalker", "torch", 12.0)])
    with pytest.raises(SystemExit, match="--models ifmdm,vqtalker"):
        rt.merge_rows(old_block, new, ["vqtalker"], ["ifmdm", "vqtalker"], machine, rt.settings_text(_args(train_steps=300)))
    with pytest.raises(SystemExit, match="another machine"):
        rt.merge_rows(old_block, new, ["vqtalker"], ["ifmdm", "vqtalker"], "Ryzen (8 cores, 2 threads)", settings)
    # measuring every family in the table needs no match
    text, kept = rt.merge_rows(old_block, new, ["ifmdm", "vqtalker"], ["ifmdm", "vqtalker"], "Ryzen", "other")
    assert kept == [] and [rt._family(ln) for ln in text.splitlines()[2:]] == ["vqtalker"]
