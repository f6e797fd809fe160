"""IF-MDM quality benchmark (printed, not asserted): does the tiny model really learn?

Generates the synthetic corpus, trains the tiny preset on CPU within a stated budget, then on
the held-out (val) identities reports:
  - stage-1 reconstruction PSNR / SSIM (driving frames rebuilt from the clip's first frame),
    vs the untrained model and vs just copying the source frame;
  - lip sync: Pearson r between the probe's mouth opening on audio-driven output (portrait =
    the clip's first frame, audio = the clip's speech) and the ground-truth opening, on the raw
    frames and on the decoded mp4 a user gets, with amplitude ratios (probe std on generated /
    on real: mouth, blink, yaw, pitch, roll) and real-vs-delivered frame strips (PNG) — all from
    edgeth.data.delivered, shared by every family; with the probe's own ceiling on real frames
    and the stage-1 ceiling (frames re-rendered from their own motion codes);
  - FPS of each piece in `generate` (the torch reference through the shared driver);
  - params and GFLOPs (per call and per video frame) of every program of every preset, and
    one forward of each mobile/paper program.

    python benchmarks/ifmdm_quality.py --work /tmp/ifmdm_bench --stage1-steps 1500 --stage2-steps 1000
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def preset_table(forward: bool = True) -> list[dict]:
    from edgeth.models import get_model
    from edgeth.models.ifmdm.programs import flops_per_frame

    fam = get_model("ifmdm")
    rows = []
    for name in fam.presets:
        run = fam.fresh(name)
        progs = fam.programs(run)
        per = flops_per_frame(progs, run.cfg)
        for p in progs:
            row = {"preset": name, "program": p.name, "params_M": p.meta["params"] / 1e6,
                   "gflops_call": (p.flops or 0) / 1e9, "gflops_frame": per[p.name], "forward_s": None}
            if forward and name != "tiny":
                with torch.no_grad():
                    t0 = time.perf_counter()
                    p.module(*p.example_inputs)
                    row["forward_s"] = time.perf_counter() - t0
            rows.append(row)
    return rows


def lip_sync(run, clips, steps: int, out_dir: Path, seed: int = 0, quality: str = "standard", **options) -> dict:
    """Raw and delivered lip sync + amplitude ratios (edgeth.data.delivered, shared by every family's
    benchmark), the probe's ceiling on real frames and the stage-1 ceiling (frames re-rendered from
    their own motion codes)."""
    from edgeth.data.delivered import family_quality
    from edgeth.data.probe import lip_sync_score

    q = family_quality("ifmdm", run, clips, out_dir, seed=seed, quality=quality, steps=steps, **options)
    ceil_s1 = []
    for c in clips:
        with torch.no_grad():
            fr = torch.from_numpy(np.ascontiguousarray(c.frames)).permute(0, 3, 1, 2).float() / 255
            rec = run.model.stage1.reconstruct(fr[:1].expand(len(fr), -1, -1, -1), fr).permute(0, 2, 3, 1).numpy()
        ceil_s1.append(lip_sync_score(rec, c.gt["mouth_open"]))
    fps = {k: q["frames"] / v for k, v in q["timings_s"].items() if v > 0}
    fps["pipeline"] = q["frames"] / max(sum(q["timings_s"].values()), 1e-9)
    return {**q, "lip_sync_r": q["lip_r_raw"], "lip_sync_per_clip": [round(c["lip_r_raw"], 3) for c in q["per_clip"]],
            "probe_ceiling_r": q["lip_r_real"], "stage1_ceiling_r": float(np.mean(ceil_s1)), "fps": fps, "steps": steps}


def copy_baseline(clips, pairs: int = 8, seed: int = 0) -> dict:
    from edgeth.models.common.losses import psnr, ssim

    g = np.random.default_rng(seed)
    ps, ss = [], []
    for c in clips:
        fr = torch.from_numpy(np.ascontiguousarray(c.frames)).permute(0, 3, 1, 2).float() / 255
        idx = g.integers(0, fr.shape[0], pairs)
        src = fr[:1].expand(pairs, -1, -1, -1)
        ps.append(float(psnr(src, fr[idx])))
        ss.append(float(ssim(src, fr[idx])))
    return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss))}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ifmdm_bench"))
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--stage1-steps", type=int, default=1500)
    ap.add_argument("--stage2-steps", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=50, help="DDIM steps at generation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-presets", action="store_true", help="skip the mobile/paper table")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--video-quality", default="standard", help="write_mp4 setting of the delivered file")
    ap.add_argument("--opt", action="append", default=[], metavar="NAME=VALUE", help="pipeline option (repeatable)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from edgeth.data.dataset import load_corpus
    from edgeth.data.synth import generate_corpus
    from edgeth.models import get_model
    from edgeth.models.ifmdm.run import fresh_run
    from edgeth.models.ifmdm.training import reconstruction_eval
    from edgeth.train.checkpoint import read_jsonl, stage_paths

    fam = get_model("ifmdm")
    data, run_dir = args.work / "data", args.work / f"run_s{args.stage1_steps}_{args.stage2_steps}"
    if not (data / "manifest.json").is_file():
        generate_corpus(data, clips=args.clips, seconds=args.seconds, size=64, seed=args.seed)
    t0 = time.perf_counter()
    fam.train(data, run_dir, preset="tiny", device="cpu", seed=args.seed, progress=False,
              overrides={"stage1_steps": args.stage1_steps, "stage2_steps": args.stage2_steps})
    train_s = time.perf_counter() - t0
    stage_s = {s: (read_jsonl(stage_paths(run_dir, s)["log"]) or [{}])[-1].get("elapsed_s") for s in ("stage1", "stage2")}
    run = fam.load(run_dir)
    val = load_corpus(data, size=64, split="val")
    out = {
        "budget": {"stage1_steps": args.stage1_steps, "stage2_steps": args.stage2_steps, "train_wall_s": train_s,
                   "stage_s": stage_s, "threads": args.threads, "clips": args.clips, "seconds": args.seconds,
                   "val_clips": len(val)},
        "recon_trained": reconstruction_eval(run.model, val),
        "recon_untrained": reconstruction_eval(fresh_run(run.cfg).model, val),
        "recon_copy_source": copy_baseline(val),
        "lip": lip_sync(run, val, args.steps, args.work / "quality", args.seed, args.video_quality,
                        **dict(o.split("=", 1) for o in args.opt)),
    }
    if not args.no_presets:
        out["presets"] = preset_table()
    _print(out)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


def _print(o: dict) -> None:
    b = o["budget"]
    print(f"\nIF-MDM tiny on CPU ({b['threads']} threads): stage 1 {b['stage1_steps']} steps + stage 2 "
          f"{b['stage2_steps']} steps, {b['train_wall_s'] / 60:.1f} min wall (incl. motion extraction); "
          f"corpus {b['clips']} clips x {b['seconds']} s, {b['val_clips']} val clips (held-out identities)")
    for k in ("recon_copy_source", "recon_untrained", "recon_trained"):
        print(f"  {k:<18} PSNR {o[k]['psnr']:6.2f} dB  SSIM {o[k]['ssim']:.4f}")
    lp = o["lip"]
    from edgeth.data.delivered import summary_lines

    print("\n".join(summary_lines(lp, f"audio-driven, {lp['steps']} DDIM steps")))
    print(f"  ceilings: probe on real frames {lp['probe_ceiling_r']:.3f}, stage-1 re-render {lp['stage1_ceiling_r']:.3f}")
    print("  FPS (torch reference, per piece): " + ", ".join(f"{k} {v:.1f}" for k, v in lp["fps"].items()))
    if "presets" in o:
        print(f"\n  {'preset':<7} {'program':<19} {'params':>8} {'GFLOP/call':>11} {'GFLOP/frame':>12} {'1 fwd (s)':>10}")
        for r in o["presets"]:
            fw = f"{r['forward_s']:.3f}" if r["forward_s"] is not None else "-"
            print(f"  {r['preset']:<7} {r['program']:<19} {r['params_M']:7.2f}M {r['gflops_call']:11.3f} "
                  f"{r['gflops_frame']:12.3f} {fw:>10}")


if __name__ == "__main__":
    main()
