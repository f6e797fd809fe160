"""VQTalker quality benchmark (printed, not asserted): Table 3 of seeds/002 in miniature.

On the synthetic corpus, trains the tiny tokenizer with each quantizer (VQ / GVQ / RVQ / GRVQ
/ GRFSQ), the same step budget each, and on the held-out (val) identities reports
reconstruction PSNR / SSIM (frames rebuilt from the clip's first frame and their own tokens),
codebook utilization (mean over groups x layers of the fraction of codes used) and bitrate.
With --full it also trains the GRFSQ run's speech tokens + generator and reports the lip-sync
score of audio-driven output (the motion probe, as for IF-MDM), plus params and GFLOPs per
frame of every program of every preset (--flops). Token agreement, near-boundary counts and
FPS per target x precision come from the bundles: `edgeth build --ckpt RUN/` then
`python benchmarks/vqtalker_quality.py --bundle BUNDLE/`.

    python benchmarks/vqtalker_quality.py --work /tmp/vq_bench --steps 300 [--full] [--flops]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

VARIANTS = {  # name -> QuantizerConfig kwargs (GRFSQ = the family default: 4 x 12 x log2 625 bits a frame)
    "VQ": dict(kind="vq", groups=1, residual=1, codebook_size=1024, code_dim=48),
    "GVQ": dict(kind="vq", groups=12, residual=1, codebook_size=625, code_dim=4),
    "RVQ": dict(kind="vq", groups=1, residual=4, codebook_size=1024, code_dim=48),
    "GRVQ": dict(kind="vq", groups=12, residual=4, codebook_size=625, code_dim=4),
    "GRFSQ": dict(kind="fsq", groups=12, residual=4, levels=(5, 5, 5, 5)),
}


@torch.no_grad()
def evaluate(tok, clips, pairs: int = 16, seed: int = 0) -> dict:
    from edgeth.models.common.fsq import utilization
    from edgeth.models.common.losses import psnr, ssim

    g = np.random.default_rng(seed)
    tok.eval()
    ps, ss, idx_all = [], [], []
    for c in clips:
        fr = torch.from_numpy(np.ascontiguousarray(c.frames)).permute(0, 3, 1, 2).float() / 255
        idx = tok.tokenize(fr[:1], fr)
        idx_all.append(idx)
        pick = torch.from_numpy(g.integers(0, len(fr), pairs))
        pred = tok.render(fr[:1], idx[pick])
        ps.append(float(psnr(pred, fr[pick])))
        ss.append(float(ssim(pred, fr[pick])))
    return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss)),
            "utilization": utilization(torch.cat(idx_all), tok.quantizer.cfg.codes)}


def table3(work: Path, corpus: Path, steps: int) -> list[dict]:
    from edgeth.data.dataset import load_corpus
    from edgeth.models.common.fsq import QuantizerConfig
    from edgeth.models.vqtalker.config import preset
    from edgeth.models.vqtalker.run import load_run
    from edgeth.models.vqtalker.training import train

    val = load_corpus(corpus, size=64, split="val")
    rows = []
    for name, kw in VARIANTS.items():
        q = QuantizerConfig(**kw)
        cfg = preset("tiny")
        out = work / f"tok-{name}"
        t0 = time.perf_counter()
        train(corpus, out, stage=1, progress=False, seed=0, overrides={"quantizer": q, "tokenizer_steps": steps})
        dt = time.perf_counter() - t0
        run = load_run(out, require=("tokenizer",))
        rows.append({"quantizer": name, "bitrate_kbps": q.bitrate(cfg.fps) / 1000, "train_s": dt,
                     **evaluate(run.tokenizer, val)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def lip_sync(run_dir: Path, corpus: Path, out_dir: Path) -> dict:
    """Raw and delivered lip sync, amplitude ratios and frame strips (edgeth.data.delivered, shared
    by every family's benchmark), plus the tokenizer/generator cycle agreement."""
    from edgeth.data.dataset import load_corpus
    from edgeth.data.delivered import family_quality
    from edgeth.models import get_model

    run = get_model("vqtalker").load(run_dir)
    return family_quality("vqtalker", run, load_corpus(corpus, size=64, split="val"), out_dir)


def flops_table() -> list[dict]:
    from edgeth.models import get_model
    from edgeth.models.vqtalker.programs import flops_per_frame

    fam, rows = get_model("vqtalker"), []
    for name in fam.presets:
        run = fam.fresh(name)
        progs = fam.programs(run)
        per = flops_per_frame(progs, run.cfg)
        rows += [{"preset": name, "program": p.name, "params_M": p.meta["params"] / 1e6,
                  "gflops_frame": per[p.name]} for p in progs]
    return rows


def bundle_tokens(bundle_dir: Path) -> list[dict]:
    """Token agreement (per group / layer, first diverging frame) of every runnable backend's
    golden replay, and the near-boundary / near-tie counts of the golden run per precision
    (the detail `edgeth verify` attaches to quality/pipeline/indices)."""
    from edgeth.bundle.golden import split_pipeline
    from edgeth.bundle.io import load_bundle
    from edgeth.runtime_py.backends import available_backends
    from edgeth.runtime_py.pipeline import Pipeline
    from edgeth.runtime_py.token_parity import stage_token_detail

    b = load_bundle(bundle_dir)
    _, ref = split_pipeline(b.pipeline_golden())
    rows = []
    for backend, ok in available_backends(b).items():
        if not getattr(ok, "ok", ok):
            continue
        res = Pipeline(b, backend).run_golden()
        rows.append({"backend": backend, **stage_token_detail(b, "indices", ref["indices"], res.extras["indices"])})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/vq_bench"))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--flops", action="store_true")
    ap.add_argument("--bundle", type=Path, default=None, help="report token parity of this bundle and stop")
    args = ap.parse_args()
    if args.bundle:
        bundle_tokens(args.bundle)
        return
    from edgeth.data.synth import generate_corpus

    corpus = args.work / "corpus"
    if not (corpus / "manifest.json").is_file():
        generate_corpus(corpus, clips=8, seconds=4.0, size=64, seed=0, lossless=True, progress=False)
    rows = table3(args.work, corpus, args.steps)
    print("| quantizer | kbps | PSNR | SSIM | utilization |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['quantizer']} | {r['bitrate_kbps']:.2f} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['utilization']:.4f} |")
    if args.full:
        from edgeth.models.vqtalker.training import train

        out = args.work / "tok-GRFSQ"
        train(corpus, out, stage=2, progress=False, overrides={"generator_steps": args.steps})
        from edgeth.data.delivered import summary_lines

        q = lip_sync(out, corpus, args.work / "quality")
        print("\n".join(summary_lines(q, "audio-driven, argmax tokens")))
        print(f"  tokenizer/generator cycle agreement {q['extras'].get('cycle_agreement', float('nan')):.3f}")
    if args.flops:
        for r in flops_table():
            print(json.dumps(r))


if __name__ == "__main__":
    main()
