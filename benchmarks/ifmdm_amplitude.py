"""Where IF-MDM loses motion amplitude, step by step (printed, not asserted).

On a trained run and the held-out (val) clips of its corpus, each row is one step of the
path from speech to pixels, with the motion probe's amplitude ratios (std on that step's
frames / std on the real clip; 1.0 = as lively as the real speaker) and lip sync r:
  - real          the clip itself (probe ceiling);
  - s1 encoder    stage-1 re-render of the clip's own encoder codes (renderer + encoder ceiling);
  - s1 mouth xk   the same with the mouth coefficients' deviation from the portrait scaled by k
                  (the renderer's response to the mouth code);
  - s2 ...        the audio-driven pipeline (stage 2 sampled codes, rendered), per setting;
and, in code space, the std over time of stage 2's sampled codes over the encoder codes' std
on the same clip, for the pose part and the mouth part of the code.

    python benchmarks/ifmdm_amplitude.py --run RUN/ --data DATA/ [--steps 50] \
        [--setting guidance=1 --setting motion_std=0.3 ...]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from edgeth.data.delivered import AMPLITUDE_KEYS


def _probe_row(name: str, clips, frames_list) -> dict:
    from edgeth.data.probe import measure, pearson

    ratios, rs = {k: [] for k in AMPLITUDE_KEYS}, []
    for c, fr in zip(clips, frames_list):
        n = min(len(fr), len(c.frames))
        real, gen = measure(c.frames[:n]), measure(np.asarray(fr)[:n])
        for k in AMPLITUDE_KEYS:
            ratios[k].append(np.std(gen[k]) / max(np.std(real[k]), 1e-6))
        rs.append(pearson(gen["mouth_open"], c.gt["mouth_open"][:n]))
    return {"step": name, "r": float(np.mean(rs)), **{k: float(np.mean(v)) for k, v in ratios.items()}}


@torch.no_grad()
def _render(s1, first: np.ndarray, codes: torch.Tensor) -> np.ndarray:
    """Render motion codes [T, D] from the portrait `first` uint8 [S, S, 3] -> float frames [T, S, S, 3]."""
    src = torch.from_numpy(np.ascontiguousarray(first)).permute(2, 0, 1)[None].float() / 255
    feats, coeff = s1.encoder.features(src)
    out = [s1.renderer(feats, torch.tanh(coeff), codes[i:i + 32]) for i in range(0, len(codes), 32)]
    return torch.cat(out).permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def _codes(s1, frames: np.ndarray) -> torch.Tensor:
    from edgeth.models.ifmdm.training import extract_motion

    return torch.from_numpy(extract_motion(s1.encoder, frames))


def stage1_rows(run, clips, mouth_gains=(2.0, 4.0)) -> list[dict]:
    s1, k = run.model.stage1.eval(), run.cfg.stage1.mouth_code_dim
    codes = [_codes(s1, c.frames) for c in clips]
    rows = [_probe_row("real", clips, [c.frames for c in clips]),
            _probe_row("s1 encoder codes", clips, [_render(s1, c.frames[0], m) for c, m in zip(clips, codes)])]
    for g in mouth_gains:
        scaled = []
        for c, m in zip(clips, codes):
            m = m.clone()
            m0 = m[:1, -k:]  # the portrait's (first frame's) mouth coefficients
            m[:, -k:] = (m0 + g * (m[:, -k:] - m0)).clamp(-1, 1)
            scaled.append(_render(s1, c.frames[0], m))
        rows.append(_probe_row(f"s1 mouth x{g:g}", clips, scaled))
    return rows


def stage2_row(run, clips, name: str, steps: int, seed: int = 0, **opts) -> dict:
    from edgeth.models import get_model
    from edgeth.runtime_py.pipelines import SeededNoise, get_pipeline
    from edgeth.runtime_py.torch_backend import torch_call

    fam = get_model("ifmdm")
    spec = fam.pipeline(run)
    call, drive = torch_call(fam.programs(run)), get_pipeline(spec.kind)
    s1, k = run.model.stage1.eval(), run.cfg.stage1.mouth_code_dim
    frames, pose, mouth = [], [], []
    for c in clips:
        res = drive(spec, call, image=c.frames[0].astype(np.float32) / 255, audio=c.audio, noise=SeededNoise(seed),
                    steps=steps, **spec.parse_options(opts))
        frames.append(res.frames)
        gen, true = res.extras["motion"], _codes(s1, c.frames).numpy()
        ratio = gen.std(0) / np.maximum(true.std(0), 1e-6)
        pose.append(ratio[:-k].mean())
        mouth.append(ratio[-k:].mean())
    return {**_probe_row(name, clips, frames), "code_pose": float(np.mean(pose)), "code_mouth": float(np.mean(mouth))}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--clips", type=int, default=0, help="use only the first N val clips (0 = all)")
    ap.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE[,NAME=VALUE]",
                    help="a stage-2 pipeline setting to measure (repeatable); the defaults are always measured")
    ap.add_argument("--no-stage1", action="store_true")
    args = ap.parse_args(argv)

    from edgeth.data.dataset import load_corpus
    from edgeth.models import get_model

    run = get_model("ifmdm").load(args.run)
    clips = load_corpus(args.data, size=run.cfg.stage1.image_size, split="val")
    clips = clips[:args.clips] if args.clips else clips
    rows = [] if args.no_stage1 else stage1_rows(run, clips)
    for s in ["", *args.setting]:
        opts = dict(kv.split("=", 1) for kv in s.split(",") if kv)
        rows.append(stage2_row(run, clips, "s2 " + (s or "defaults"), args.steps, **opts))
        _print(rows)
    return rows


def _print(rows: list[dict]) -> None:
    print(f"\n{'step':<34} {'lip r':>6} " + " ".join(f"{k:>10}" for k in AMPLITUDE_KEYS) + f" {'code pose':>9} {'code mouth':>10}")
    for r in rows:
        code = f" {r['code_pose']:9.2f} {r['code_mouth']:10.2f}" if "code_pose" in r else ""
        print(f"{r['step']:<34} {r['r']:6.3f} " + " ".join(f"{r[k]:10.2f}" for k in AMPLITUDE_KEYS) + code, flush=True)


if __name__ == "__main__":
    main()
