"""Real time on this machine: each family's `mobile` preset, audio -> video at 256x256, eager
PyTorch FP32 and every runnable backend x precision measured side by side in one run.

  python benchmarks/realtime.py                       # every family with a `mobile` preset
  python benchmarks/realtime.py --models ifmdm --train-steps 150 --precisions fp32,int8,mixed \\
      --quantize-only renderer --work ~/.cache/edgeth/realtime --readme README.md --json realtime.json

Per family it runs `edgeth build` (edgeth.build: synthetic 256x256 corpus, the `mobile` preset
trained briefly — random weights exaggerate INT8 damage, so they are not the figure —
calibration, export to every target and precision, verification against the FP32 reference,
`edgeth bench`), everything cached under --work and reused on a rerun. From that one run it
prints, per backend x precision: end-to-end fps and its ratio to eager FP32 measured in the
same run, worst-frame PSNR vs the FP32 reference, model size, streaming figures (speech in
200 ms chunks arriving in real time: first frame, smooth playback, worst gap, real-time
factor; edgeth.bench.stream) and each program's share of the pipeline's time; then the
renderer's speed ratio and the per-op profile (ETDump, benchmarks/et_profile.py) of every
ExecuTorch program, so the next bottleneck is visible. Timings on a shared machine are noisy:
the ratios (same run, same inputs) are the figure.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- realtime-table:begin -->", "<!-- realtime-table:end -->"


def families_with(preset: str, wanted: list[str] | None) -> list[str]:
    from edgeth.models import get_model, model_names

    names = wanted or model_names()
    return [n for n in names if preset in getattr(get_model(n), "presets", ())]


def build_family(name: str, a: argparse.Namespace):
    from edgeth.build import BuildConfig, build

    cfg = BuildConfig(model=name, preset=a.preset, size=a.size, clips=a.clips, seconds=a.seconds,
                      max_steps=a.train_steps, precisions=tuple(a.precisions.split(",")),
                      targets=tuple(a.targets.split(",")) if a.targets else None, steps=a.sampler_steps,
                      threads=a.threads, bench=True, bench_iters=a.iters, frames=a.frames,
                      calib_clips=a.calib_clips,
                      quantize_only=None if a.quantize_only in (None, "all") else tuple(a.quantize_only.split(",")))
    return build(Path(a.work).expanduser() / name, cfg, progress=True)


def op_profiles(bundles: dict[str, Path], threads: int) -> dict[str, dict[str, Any]]:
    """{"<precision>/<program>": op profile} of every ExecuTorch program in the built bundles."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from et_profile import op_profile

    from edgeth.bundle.io import load_bundle

    out = {}
    for key, path in bundles.items():
        b = load_bundle(path)
        if "executorch" not in b.manifest["targets"]:
            continue
        for prog in b.program_names:
            art = b.program(prog)["artifacts"]["executorch"]
            try:
                out[f"{key}/{prog}"] = op_profile(b.artifact_dir("executorch") / art["files"][0],
                                                  b.golden_calls(prog)[0][0], runs=3, threads=threads)
            except Exception as e:  # a profile that cannot be taken is reported, not hidden
                out[f"{key}/{prog}"] = {"error": f"{type(e).__name__}: {e}"}
    return out


def rows_for(name: str, preset: str, summary: list[dict[str, Any]], bench: dict[str, Any]) -> list[dict[str, Any]]:
    from edgeth.runtime_py.backends import target_for_backend

    # the quality stage's frames figure: worst-frame PSNR vs the FP32 reference (worst_psnr_db is gate 1's)
    psnr = {(r["target"], r["precision"]): ((r.get("stages") or {}).get("frames") or {}).get("psnr_db") for r in summary}
    eager = next((r for r in bench["pipeline"] if r["backend"] == "torch"), {})
    out = []
    for r in bench["pipeline"]:
        target = target_for_backend(r["backend"])
        st = r.get("stream", {})
        out.append({"model": name, "preset": preset, "backend": r["backend"], "precision": r.get("precision", "fp32"),
                    "frames": r["frames"], "fps": r["fps"],
                    "vs_eager": r["fps"] / eager["fps"] if eager.get("fps") else None,  # the one eager row shown
                    "worst_psnr_db": None if target is None else psnr.get((target, r.get("precision"))),
                    "size_mb": (r.get("size_bytes") or 0) / 1e6,
                    "size_vs_eager": (r.get("size_bytes") or 0) / max(eager.get("size_bytes") or 1, 1),
                    "stream": st, "shares": st.get("shares", {})})
    return out


def table(rows: list[dict[str, Any]]) -> str:
    def f(v, spec=".1f"):
        return "—" if v is None else format(v, spec)

    out = ["| model | backend | fps | vs eager | worst PSNR dB | size MB | first frame ms | smooth from ms "
           "| worst gap ms | RTF | time shares |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["stream"]
        shares = ", ".join(f"{k.replace('_', ' ')} {v:.0%}" for k, v in sorted(r["shares"].items(), key=lambda x: -x[1])
                           if v >= 0.02)
        out.append(f"| {r['model']} {r['preset']} | {r['backend']} {r['precision']} | {f(r['fps'])} | "
                   f"{f(r['vs_eager'], '.2f')}x | {f(r['worst_psnr_db'])} | {f(r['size_mb'])} | "
                   f"{f(s.get('first_frame_ms'), '.0f')} | {f(s.get('playback_delay_ms'), '.0f')} | "
                   f"{f(s.get('worst_gap_ms'), '.0f')} | {f(s.get('rtf'), '.2f')} | {shares} |")
    return "\n".join(out)


def profile_lines(profiles: dict[str, dict[str, Any]], bench: dict[str, Any]) -> list[str]:
    ratio = {(r["program"], r["backend"], r.get("precision")): r.get("speed_ratio") for r in bench["programs"]}
    lines = []
    for key, p in profiles.items():
        prec, prog = key.split("/", 1)
        r = ratio.get((prog, "executorch", prec.split("-")[0]))
        head = f"executorch {key}: {'' if r is None else f'{r:.2f}x eager, '}"
        if "error" in p:
            lines.append(head + f"profile failed: {p['error']}")
            continue
        ops = "; ".join(f"{n}{' [xnnpack]' if d else ''} {s:.0%}" for n, s, d in p["ops"][:6])
        lines.append(head + f"XNNPACK delegate {p['delegated_share']:.0%} of time; "
                     f"portable: {', '.join(p['portable_ops']) or 'none'}; top: {ops}")
    return lines


def settings_text(a: argparse.Namespace) -> str:
    """What the table's rows were measured with (the README's footnote; rows merge only under the same)."""
    return (f"{a.sampler_steps} DDIM steps, {a.size}x{a.size}, brief training ({a.train_steps} steps per stage), "
            + (f"only {a.quantize_only} quantized (the rest FP32), " if a.quantize_only not in (None, "all") else "")
            + f"{a.calib_clips} calibration clips")


def machine_text(m: dict[str, Any], threads: int) -> str:
    return f"{m.get('cpu', '?')} ({m.get('cores', '?')} cores, {threads} threads)"


def _family(row: str) -> str:
    return row.split("|")[1].strip().split(" ")[0]


def merge_rows(old_block: str, rows_text: str, measured: list[str], order: list[str], machine: str,
               settings: str) -> tuple[str, list[str]]:
    """The table's rows: this run's families (rows_text) and, from the README's current block,
    every other family's rows, kept only when that block says the same machine and settings.
    Returns (table, the families kept)."""
    head, new = rows_text.splitlines()[:2], rows_text.splitlines()[2:]
    old = [ln for ln in old_block.splitlines()[2:] if ln.startswith("| ") and _family(ln) not in measured]
    kept = list(dict.fromkeys(_family(ln) for ln in old))
    if kept and (machine not in old_block or settings not in old_block):
        raise SystemExit(f"error: the README's table also holds {', '.join(kept)}, measured on another machine or "
                         f"with other settings than this run ({machine}; {settings}) — rerun with "
                         f"--models {','.join(kept + measured)} to measure them side by side, or the same settings")
    rank = {n: i for i, n in enumerate(order)}
    rows = sorted(old + new, key=lambda ln: rank.get(_family(ln), len(rank)))  # stable: each family's rows keep their order
    return "\n".join(head + rows), kept


def readme_block(readme: Path) -> str:
    s = readme.read_text()
    if BEGIN not in s or END not in s:
        raise SystemExit(f"error: {readme} has no {BEGIN} ... {END} block — add the two markers where the table goes")
    return s[s.index(BEGIN) + len(BEGIN):s.index(END)].strip("\n")


def write_readme(readme: Path, text: str) -> None:
    from edgeth.io_utils import atomic_path

    readme_block(readme)  # the markers are there
    s = readme.read_text()
    new = s[:s.index(BEGIN) + len(BEGIN)] + "\n" + text + "\n" + s[s.index(END):]
    with atomic_path(readme) as tmp:
        Path(tmp).write_text(new)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=None, help="comma-separated families (default: every one with `mobile`)")
    ap.add_argument("--preset", default="mobile", help="the preset measured (tiny: a quick smoke run of this script)")
    ap.add_argument("--size", type=int, default=256, help="corpus frame size (the preset's image size)")
    ap.add_argument("--work", default="~/.cache/edgeth/realtime", help="cache: corpus, runs, bundles per family")
    ap.add_argument("--train-steps", type=int, default=150, help="training steps per stage (brief; a throughput figure)")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--precisions", default="fp32,int8,mixed")
    ap.add_argument("--quantize-only", default="renderer", metavar="PROGRAMS",
                    help="programs that get int8/mixed, the others FP32 (default: renderer, 90%% of the time; "
                         "'all': every program — a full INT8 mobile build misses its gate on the denoiser, and "
                         "the whole-pipeline mixed search takes over 25 minutes on 2 cores)")
    ap.add_argument("--calib-clips", type=int, default=2,
                    help="calibration clips (2: a renderer-only mixed export in ~3 minutes; 4 took over 8)")
    ap.add_argument("--targets", default="executorch,onnx", help="comma-separated (default: executorch,onnx)")
    ap.add_argument("--sampler-steps", type=int, default=10, help="DDIM steps of the measured run")
    ap.add_argument("--frames", type=int, default=None, help="end-to-end length (default: the golden run)")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-profile", action="store_true", help="skip the ETDump per-op profiles")
    ap.add_argument("--readme", type=Path, default=None, help=f"rewrite the {BEGIN} block of this README")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    from edgeth.bench import machine_info
    from edgeth.build import summary_table

    rows, report, machine = [], {}, {}
    families = families_with(a.preset, a.models.split(",") if a.models else None)
    if a.readme:  # before the long builds: can this run's rows join the README's table?
        from edgeth.models import model_names

        merge_rows(readme_block(a.readme), table([]), families, model_names(),
                   machine_text(machine_info(a.threads), a.threads), settings_text(a))
    for name in families:
        res = build_family(name, a)
        print(summary_table(res.summary))
        bench = json.loads((res.out / "bench.json").read_text())
        profiles = {} if a.no_profile else op_profiles(res.bundles, a.threads)
        rows += rows_for(name, a.preset, res.summary, bench)
        report[name] = {"summary": res.summary, "bench": bench, "profiles": profiles}
        print("\n".join(profile_lines(profiles, bench)))
        machine = bench["machine"]
    if not rows:
        raise SystemExit(f"error: no registered family has a {a.preset!r} preset — pass --models NAME")
    m = machine or machine_info(a.threads)
    machine, settings = machine_text(m, a.threads), settings_text(a)
    rows_text, kept = table(rows), []
    if a.readme:  # families this run did not measure keep their rows (same machine and settings only)
        from edgeth.models import model_names

        rows_text, kept = merge_rows(readme_block(a.readme), rows_text, list(report), model_names(), machine, settings)
    text = (rows_text + f"\n\nMeasured on {machine}, {m.get('system', '')}, torch {m.get('torch', '?')}, "
            f"matmul peak {m.get('peak_gflops') or 0:.0f} GFLOP/s; {settings}, "
            "each family's rows measured side by side in one run"
            + (f" ({', '.join(kept)}: an earlier run of this script, same CPU, threads and settings)." if kept else "."))
    print(text)
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, "families": report}, indent=1, default=str))
    if a.readme:
        write_readme(a.readme, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
