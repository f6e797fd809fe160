"""VQTalker's deployable pieces as edgeth Programs (static shapes, numpy-friendly I/O).

  appearance_encoder  image [1, 3, S, S] in [0, 1] -> a^0..a^K, f_g [1, Cg], f_s [1, Dm]    once per portrait
  speech_tokenizer    wave [1, 640 T]              -> scores [1, T, V]  (argmax = token)    per window (FP32)
  control_generator   speech int32 [1, T]          -> controls [1, T, C] (standardized)    per window (FP32)
  token_generator     speech int32 [1, T], f_g [1, Cg], controls [1, T, C],
                      tokens int32 [1, T, G, R], layer [1, R] -> logits [1, T, G, K]        R times per window
  renderer            a^0..a^K, f_g, indices int32 [N, G, R] -> frames [N, 3, S, S]         per N frames
  tokenizer_encoder   frames [N, 3, S, S]          -> f_t [N, Dm]        (the sender side; float_only)
  quantizer           f_t [N, Dm], f_s [1, Dm]     -> indices int32 [N, G, R],
                                                      pre-rounding [N, G, R, d]            (FP32)

Everything upstream of FSQ rounding stays float at every precision: tokenizer_encoder is
float_only as a whole and quantizer is pinned to FP32 (INT8 there scrambled indices: 19%
agreement measured). The code lookups inside renderer and token_generator are float_only
(INT8 would round the code table). speech_tokenizer is a fixed DSP step + nearest centroid,
pinned to FP32 like IF-MDM's audio_frontend (a flipped speech token changes every later layer);
control_generator (the audio-conditioned pose / gaze / blink generator, controls.py; absent
for a run trained before it) is pinned too: its controls feed the FP32 token generator's
argmax, and it costs ~1 MFLOP per window.
token_generator is pinned to FP32 too: in FP16 (ONNX Runtime, tiny fixture) its argmax flipped
tokens at near-ties and the video fell to 28 dB at the flipped frame (bound 35 dB); it costs
R/T calls a frame (~13 MFLOPs/frame at tiny vs the renderer's ~137), so only the renderer and
the appearance encoder take the reduced precisions. The mixed search may revisit this under an
`indices:agreement` budget.

Shape legend: S image size, Dm = G*d, Cg global dims, T window, V speech vocabulary, C = 6
controls, G groups, R residual layers, K codes, d code dims, N render batch, a^k skips.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from edgeth.models.common.flops import count_flops, count_params
from edgeth.models.vqtalker.config import CONTROL_KEYS
from edgeth.models.vqtalker.tokenizer import LookupRenderer, MotionTokenizer
from edgeth.program import Program, TensorSpec

PROGRAM_ORDER = ("appearance_encoder", "speech_tokenizer", "control_generator", "token_generator", "renderer",
                 "tokenizer_encoder", "quantizer")
ROLES = {"appearance": "appearance_encoder", "speech_tokenizer": "speech_tokenizer", "controls": "control_generator",
         "generator": "token_generator", "renderer": "renderer", "tokenizer_encoder": "tokenizer_encoder",
         "quantizer": "quantizer"}


def program_order(run) -> tuple[str, ...]:
    """The run's programs in run order (no control_generator for a run trained before it)."""
    return tuple(p for p in PROGRAM_ORDER if p != "control_generator" or run.controls is not None)


class AppearanceProgram(nn.Module):
    def __init__(self, tok: MotionTokenizer):
        super().__init__()
        self.tok = tok

    def forward(self, image: torch.Tensor):
        feats, f_g, f = self.tok.encode(image)
        return (*feats, f_g, f)


class EncoderProgram(nn.Module):
    def __init__(self, tok: MotionTokenizer):
        super().__init__()
        self.encoder = tok.encoder

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.encoder.features(frames)[1]


class QuantizerProgram(nn.Module):
    def __init__(self, tok: MotionTokenizer):
        super().__init__()
        self.quantizer = tok.quantizer

    def forward(self, f_t: torch.Tensor, f_s: torch.Tensor):
        q = self.quantizer
        pre = q.pre_rounding(f_t - f_s)  # [N, G, R, d]
        return q.index_of(torch.round(pre) + q.half_w).to(torch.int32), pre


def app_names(run) -> list[str]:
    return [f"app{i}" for i in range(run.cfg.app_levels + 1)]


def build_programs(run, *, flops: bool = True) -> list[Program]:
    cfg, tok, gen, speech = run.cfg, run.tokenizer.cpu().eval(), run.generator.cpu().eval(), run.speech.cpu().eval()
    qc = cfg.quantizer
    s, dm, cg, t, n, spf = cfg.image_size, cfg.motion_dim, cfg.global_dim, cfg.window, cfg.render_batch, 16000 // cfg.fps
    G, R, K, d, V, C = qc.groups, qc.residual, qc.codes, qc.group_dim, cfg.speech_vocab, len(CONTROL_KEYS)
    g = torch.Generator().manual_seed(0)
    shapes = tok.cfg.app_shapes
    app_specs = [TensorSpec(nm, (1, *shp), kind="image" if i == 0 else "features")
                 for i, (nm, shp) in enumerate(zip(app_names(run), shapes))]
    fg_spec, fs_spec = TensorSpec("f_g", (1, cg), kind="features"), TensorSpec("f_s", (1, dm), kind="features")
    image = torch.rand(1, 3, s, s, generator=g)
    app = AppearanceProgram(tok).eval()
    with torch.no_grad():
        app_out = app(image)
        frames = torch.rand(n, 3, s, s, generator=g)
        f_t = tok.motion(frames)
    wave = torch.randn(1, spf * t, generator=g) * 0.1
    idx = torch.randint(0, K, (n, G, R), generator=g, dtype=torch.int32)
    gen_x = (torch.randint(0, V, (1, t), generator=g, dtype=torch.int32), app_out[-2], torch.randn(1, t, C, generator=g),
             torch.randint(0, K, (1, t, G, R), generator=g, dtype=torch.int32), torch.eye(R)[1:2])
    progs = [
        Program("appearance_encoder", app, [TensorSpec("image", (1, 3, s, s), kind="image")],
                [*app_specs, fg_spec, fs_spec], (image,), meta={"runs": "once per portrait"}),
        Program("speech_tokenizer", speech, [TensorSpec("audio", (1, spf * t), kind="audio")],
                [TensorSpec("scores", (1, t, V), kind="features")], (wave,),
                meta={"runs": "once per window", "frames": t, "precision": "fp32"}),
        *control_programs(run, gen_x[0]),
        Program("token_generator", gen,
                [TensorSpec("speech_tokens", (1, t), dtype="int32", kind="indices"), fg_spec,
                 TensorSpec("controls", (1, t, C), kind="motion"),
                 TensorSpec("tokens", (1, t, G, R), dtype="int32", kind="indices"),
                 TensorSpec("layer", (1, R), kind="scalar")],
                [TensorSpec("logits", (1, t, G, K), kind="tensor")], gen_x,
                meta={"runs": "R times per window", "frames": t, "precision": "fp32"}, float_only=("codes",)),
        Program("renderer", LookupRenderer(tok).eval(),
                [*app_specs, fg_spec, TensorSpec("indices", (n, G, R), dtype="int32", kind="indices")],
                [TensorSpec("frames", (n, 3, s, s), kind="image")], (*app_out[:-1], idx),
                meta={"runs": "per batch of frames", "frames": n}, float_only=("lookup",)),
        Program("tokenizer_encoder", EncoderProgram(tok).eval(), [TensorSpec("frames", (n, 3, s, s), kind="image")],
                [TensorSpec("f_t", (n, dm), kind="features")], (frames,),
                meta={"runs": "per batch of frames (sender)", "frames": n}, float_only=("encoder",)),
        Program("quantizer", QuantizerProgram(tok).eval(), [TensorSpec("f_t", (n, dm), kind="features"), fs_spec],
                [TensorSpec("indices", (n, G, R), dtype="int32", kind="indices"),
                 TensorSpec("pre_rounding", (n, G, R, d), kind="tensor")], (f_t, app_out[-1]),
                meta={"runs": "per batch of frames (sender)", "frames": n, "precision": "fp32"}),
    ]
    for p in progs:
        p.meta["params"] = count_params(p.module)
        if flops:
            p.flops = count_flops(p.module, p.example_inputs)
    return progs


def control_programs(run, speech: torch.Tensor) -> list[Program]:
    """[control_generator] (speech int32 [1, T] -> controls [1, T, C]), or [] without one."""
    if run.controls is None:
        return []
    t, c = speech.shape[1], len(CONTROL_KEYS)
    return [Program("control_generator", run.controls.cpu().eval(),
                    [TensorSpec("speech_tokens", (1, t), dtype="int32", kind="indices")],
                    [TensorSpec("controls", (1, t, c), kind="motion")], (speech,),
                    meta={"runs": "once per window", "frames": t, "precision": "fp32"})]


def flops_per_frame(progs: list[Program], cfg) -> dict[str, float]:
    """GFLOPs per video frame of each program (per-window programs amortised over T frames)."""
    t, n, r = cfg.window, cfg.render_batch, cfg.quantizer.residual
    per = {"appearance_encoder": 0.0, "speech_tokenizer": 1 / t, "control_generator": 1 / t,
           "token_generator": r / t, "renderer": 1 / n, "tokenizer_encoder": 1 / n, "quantizer": 1 / n}
    return {p.name: (p.flops or 0) / 1e9 * per[p.name] for p in progs}
