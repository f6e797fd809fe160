"""MDCF benchmarks (printed; figures recorded in the issue note).

  table5   Table 5 in miniature on held-out synthetic identities, the same step budget each:
           reconstruction PSNR / SSIM and Flow Smoothness (Eq. 13, runtime_py.optical_flow)
           of driving frames rebuilt from each clip's first frame by FDE alone, MDCF (TPC),
           MDCF w/o IGC and end-to-end (w/o TPC), with the motion probe on those re-renders
           (lip sync r, mouth and yaw amplitude); then the audio-driven lip-sync score of the
           TPC run (edgeth.data.probe: Pearson r of the probe's mouth opening vs ground truth).
  memory   peak RSS and time of latent generation vs N frames, global vs windowed NAR, on a
           preset's (untrained) programs in PyTorch, or windowed NAR on an exported bundle's
           backend (--bundle, e.g. ExecuTorch): each point in its own process (peak RSS is
           per process); the frames are decoded and rendered streamed (a device app writes
           them to an encoder, never holds N frames), timed on the first 25.

  flops    params and GFLOPs per generated frame of each program, per preset (windowed NAR:
           a window adds T - O frames; the denoiser runs every DDIM step)

  python benchmarks/mdcf_quality.py flops --presets tiny,mobile,paper
  python benchmarks/mdcf_quality.py table5        # FDE 1500, LMAE 1500, diffusion 600 steps, 48 clips
  python benchmarks/mdcf_quality.py memory --preset mobile --frames 200,800,1600
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# -- table 5 ---------------------------------------------------------------------------------
def recon_eval(model, clips, mode: str, frames: int = 48) -> dict:
    """PSNR / SSIM / Eq. 13 FS of frames 1..frames rebuilt from frame 0 (FDE alone or through the
    LMAE mean), and the motion probe on them: lip sync r against the true opening and the mouth /
    yaw amplitude ratios (a re-render that keeps the source's closed mouth scores ~0 there)."""
    import torch

    from edgeth.data.delivered import amplitude_ratios
    from edgeth.data.probe import measure, pearson
    from edgeth.models.common.losses import psnr, ssim
    from edgeth.runtime_py.optical_flow import video_flow_smoothness

    ps, ss, fs, fs_gt, lip, amp, yaw = [], [], [], [], [], [], []
    fde, lmae = model.fde.eval(), model.lmae.eval()
    with torch.no_grad():
        for c in clips:
            fr = torch.from_numpy(np.ascontiguousarray(c.frames[:frames])).permute(0, 3, 1, 2).float() / 255
            src = fr[:1].expand(len(fr), -1, -1, -1)
            dyn = fde.estimator(src, fr)
            if mode != "fde":
                dyn = lmae.decode(lmae.encode(dyn)[0])
            pred = fde.decoder(src, fde.encoder(src), dyn)
            ps.append(float(psnr(pred, fr)))
            ss.append(float(ssim(pred, fr)))
            fs.append(video_flow_smoothness(pred.permute(0, 2, 3, 1).numpy()))
            fs_gt.append(video_flow_smoothness(fr.permute(0, 2, 3, 1).numpy()))
            gen = measure(pred.permute(0, 2, 3, 1).numpy())
            ratios = amplitude_ratios(gen, measure(c.frames[:len(fr)]))
            lip.append(pearson(gen["mouth_open"], c.gt["mouth_open"][:len(fr)]))
            amp.append(ratios["mouth_open"])
            yaw.append(ratios["yaw"])
    return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss)), "fs": float(np.mean(fs)), "fs_gt": float(np.mean(fs_gt)),
            "lip_r": float(np.mean(lip)), "mouth_amp": float(np.mean(amp)), "yaw_amp": float(np.mean(yaw))}


def lip_sync(run, clips, steps: int, out_dir: Path) -> dict:
    """Raw and delivered lip sync, amplitude ratios and frame strips (edgeth.data.delivered, shared
    by every family's benchmark)."""
    from edgeth.data.delivered import family_quality

    return {**family_quality("mdcf", run, clips, out_dir, steps=steps), "steps": steps}


def table5(args) -> None:
    import torch

    from edgeth.data.dataset import load_corpus
    from edgeth.data.synth import generate_corpus
    from edgeth.models.mdcf.run import MDCF, load_weights_into
    from edgeth.models.mdcf.training import train

    torch.set_num_threads(args.threads)
    root = Path(args.work)
    data = root / "corpus"
    if not (data / "manifest.json").is_file():
        generate_corpus(data, clips=args.clips, seconds=args.seconds, size=64, seed=args.seed, progress=False)
    over = {"fde_steps": args.fde_steps, "lmae_steps": args.lmae_steps, "diffusion_steps": args.diffusion_steps}
    val = load_corpus(data, size=64, split="val")
    t0 = time.perf_counter()
    kw = dict(preset="tiny", device="cpu", seed=args.seed, progress=False, overrides=over)
    train(data, root / "tpc", phase="fde", **kw)
    if not (root / "no-igc").is_dir():  # the same phase one, copied before phase two
        import shutil

        shutil.copytree(root / "tpc", root / "no-igc")
    for name in ("tpc", "no-igc"):
        train(data, root / name, phase="lmae", no_igc=name == "no-igc", **kw)
    train(data, root / "e2e", phase="lmae", end_to_end=True, **kw)
    train_s = time.perf_counter() - t0
    rows = {}
    for name, mode in (("FDE alone", "fde"), ("MDCF (TPC)", "tpc"), ("w/o IGC", "no-igc"), ("w/o TPC (end-to-end)", "e2e")):
        from edgeth.models.mdcf.run import read_run_json
        from edgeth.models.mdcf.config import MDCFConfig

        d = read_run_json(root / ("tpc" if mode == "fde" else mode))
        model = MDCF(MDCFConfig.from_json(d["config"]), mode="e2e" if mode == "e2e" else "tpc")
        if mode == "fde":
            from edgeth.train import load_weights

            load_weights(model.fde, root / "tpc" / "fde.safetensors")
        else:
            load_weights_into(model, root / mode, diffusion=False)
        rows[name] = recon_eval(model, val, mode)
    out = {"rows": rows, "train_s": train_s, "steps": over, "val_clips": len(val), "threads": args.threads}
    if args.diffusion_steps:
        train(data, root / "tpc", phase="diffusion", **kw)
        from edgeth.models import get_model

        out["lip"] = lip_sync(get_model("mdcf").load(root / "tpc"), val, args.sample_steps, root / "quality")
    print(json.dumps({k: v for k, v in out.items() if k != "lip"}, indent=1))
    print(f"\nTable 5 in miniature ({len(val)} held-out clips, FDE {args.fde_steps} + LMAE {args.lmae_steps} steps; "
          f"end-to-end {args.fde_steps + args.lmae_steps} steps)")
    print(f"{'method':24s} {'PSNR dB':>8s} {'SSIM':>6s} {'FS (Eq.13)':>10s} {'lip r':>6s} {'mouth':>6s} {'yaw':>6s}"
          f"   (FS of the real video {rows['FDE alone']['fs_gt']:.4f}; mouth / yaw: amplitude ratios)")
    for k, r in rows.items():
        print(f"{k:24s} {r['psnr']:8.2f} {r['ssim']:6.3f} {r['fs']:10.4f} {r['lip_r']:6.2f} {r['mouth_amp']:6.2f} {r['yaw_amp']:6.2f}")
    if "lip" in out:
        from edgeth.data.delivered import summary_lines

        print("\n".join(summary_lines(out["lip"], f"audio-driven, {args.sample_steps} DDIM steps")))


# -- memory vs N -----------------------------------------------------------------------------
def memory_one(args) -> None:
    """One (mode, N) point in this process: JSON on stdout."""
    import torch

    from edgeth.models import get_model
    from edgeth.models.mdcf.driver import decode_render, sample_latents
    from edgeth.runtime_py.pipelines import SeededNoise
    from edgeth.runtime_py.torch_backend import torch_call

    torch.set_num_threads(args.threads)
    if args.bundle:  # an exported bundle's programs on its backend (static windows: windowed NAR only)
        from edgeth.bundle.io import load_bundle
        from edgeth.runtime_py.backends import program_call

        bundle = load_bundle(args.bundle)
        spec, call = bundle.pipeline_spec(), program_call(bundle, args.backend, args.threads)
    else:
        fam = get_model("mdcf")
        run = fam.fresh(args.preset)
        spec = fam.pipeline(run)
        call = torch_call(fam.programs(run))
    if args.mode == "global":
        spec = dataclasses.replace(spec, window={**spec.window, "length": args.n, "overlap": 0})
    rng = np.random.default_rng(0)
    image = rng.random((spec.image_size, spec.image_size, 3), dtype=np.float32)
    audio = (rng.standard_normal(args.n * 640) * 0.1).astype(np.float32)
    base = _rss_mb()
    t0 = time.perf_counter()
    z = sample_latents(spec, call, image=image, audio=audio, noise=SeededNoise(0), steps=args.steps,
                       nar=args.mode, eta=0.0)
    t_lat = time.perf_counter() - t0
    render = decode_render(spec, call)
    b = int(spec.extra["render_batch"])
    t1 = time.perf_counter()
    shown = min(25, args.n)
    for i in range(0, args.n, b):  # streamed: each batch of frames is dropped (an app would encode it)
        if i < shown:
            render("renderer", [z["image"], z["emb"], np.ascontiguousarray(z["latent"][i:i + b])])
    t_render = (time.perf_counter() - t1) / shown
    print(json.dumps({"mode": args.mode, "n": args.n, "peak_rss_mb": _rss_mb(), "loaded_rss_mb": base,
                      "latent_s_per_step": t_lat / args.steps, "render_ms_per_frame": 1000 * t_render,
                      "windows": len(z["starts"])}))


def memory(args) -> None:
    rows = []
    for mode in ("windowed",) + (() if args.bundle else ("global",)):
        for n in (int(x) for x in args.frames.split(",")):
            if mode == "global" and n > args.global_max:
                rows.append({"mode": mode, "n": n, "skipped": f"global NAR above {args.global_max} frames not run here"})
                continue
            cmd = [sys.executable, __file__, "memory-one", "--mode", mode, "--n", str(n), "--preset", args.preset,
                   "--steps", str(args.steps), "--threads", str(args.threads)]
            cmd += ["--bundle", args.bundle, "--backend", args.backend] if args.bundle else []
            r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
            rows.append(json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else
                        {"mode": mode, "n": n, "error": r.stderr.strip().splitlines()[-1:]})
            print(json.dumps(rows[-1]), flush=True)
    where = f"{args.backend} bundle {args.bundle}" if args.bundle else "PyTorch eager"
    print(f"\n{args.preset}: latent generation ({args.steps} DDIM step timed) + streamed render, {where}, "
          f"{args.threads} thread(s)")
    print(f"{'mode':9s} {'N':>5s} {'peak MB':>8s} {'loaded MB':>9s} {'s/step':>8s} {'render ms/frame':>15s}")
    for r in rows:
        if "peak_rss_mb" in r:
            print(f"{r['mode']:9s} {r['n']:5d} {r['peak_rss_mb']:8.0f} {r['loaded_rss_mb']:9.0f} "
                  f"{r['latent_s_per_step']:8.2f} {r['render_ms_per_frame']:15.1f}")
        else:
            print(f"{r['mode']:9s} {r['n']:5d}  {r.get('skipped') or r.get('error')}")
    win = {r["n"]: r["peak_rss_mb"] for r in rows if r["mode"] == "windowed" and "peak_rss_mb" in r}
    if len(win) > 1:
        lo, hi = min(win), max(win)
        print(f"windowed peak at {hi} / at {lo} frames: {win[hi] / win[lo]:.2f}x (target <= 1.3x)")


def flops(args) -> None:
    from edgeth.models import get_model
    from edgeth.models.mdcf.config import compression
    from edgeth.models.mdcf.programs import flops_per_frame

    fam = get_model("mdcf")
    for name in args.presets.split(","):
        run = fam.fresh(name)
        cfg, progs = run.cfg, fam.programs(run)
        s, q = cfg.fde.image_size, cfg.fde.dyn_size
        r = compression((3, s, s), (3, q, q), cfg.latent_shape())
        per = flops_per_frame(progs, cfg)
        d = cfg.diffusion
        print(f"\n{name}: {s}x{s}, latent {cfg.latent_shape()}, C_FDE {r['fde']:g} x C_LMAE {r['lmae']:g} = "
              f"{r['mdcf']:g}; window {d.window}/{d.overlap}, {d.steps} DDIM steps")
        print(f"{'program':22s} {'params M':>9s} {'GFLOP/call':>11s} {'GFLOP/frame':>12s}")
        for p in progs:
            print(f"{p.name:22s} {p.meta['params'] / 1e6:9.3f} {(p.flops or 0) / 1e9:11.3f} {per[p.name]:12.3f}")
        print(f"{'total':22s} {sum(p.meta['params'] for p in progs) / 1e6:9.3f} {'':11s} {sum(per.values()):12.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("table5")
    t.add_argument("--work", default="/tmp/mdcf-table5")
    t.add_argument("--clips", type=int, default=48,
                   help="corpus clips (3/4 train identities: 12 clips gave the FDE too few to draw held-out mouths)")
    t.add_argument("--seconds", type=float, default=4.0)
    t.add_argument("--fde-steps", type=int, default=1500)
    t.add_argument("--lmae-steps", type=int, default=1500)
    t.add_argument("--diffusion-steps", type=int, default=600)
    t.add_argument("--sample-steps", type=int, default=10)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1)
    m = sub.add_parser("memory")
    m.add_argument("--preset", default="mobile")
    m.add_argument("--frames", default="200,800,1600")
    m.add_argument("--global-max", type=int, default=800)
    m.add_argument("--steps", type=int, default=1)
    m.add_argument("--threads", type=int, default=1)
    m.add_argument("--bundle", default="", help="an exported MDCF bundle (windowed NAR on --backend)")
    m.add_argument("--backend", default="executorch")
    o = sub.add_parser("memory-one")
    o.add_argument("--mode", choices=("global", "windowed"), required=True)
    o.add_argument("--n", type=int, required=True)
    o.add_argument("--preset", default="mobile")
    o.add_argument("--steps", type=int, default=1)
    o.add_argument("--threads", type=int, default=1)
    o.add_argument("--bundle", default="")
    o.add_argument("--backend", default="executorch")
    f = sub.add_parser("flops")
    f.add_argument("--presets", default="tiny,mobile,paper")
    a = ap.parse_args()
    {"table5": table5, "memory": memory, "memory-one": memory_one, "flops": flops}[a.cmd](a)


if __name__ == "__main__":
    main()
