"""The registered VQTalker ModelFamily (seeds/002): train, load, programs, pipeline.

pipeline(run) is data: every number a device app needs to reproduce the loop of
edgeth.models.vqtalker.driver (programs and roles, window, quantizer and bitrate, speech
vocabulary, control statistics and prior) — recorded in every bundle's manifest.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeth.models import ModelFamily, register_model
from edgeth.models.vqtalker import driver  # noqa: F401 (registers the "vqtalker" pipeline)
from edgeth.program import PipelineSpec, Program


@register_model("vqtalker")
class VQTalkerFamily(ModelFamily):
    presets = ("tiny", "mobile", "paper")

    @property
    def description(self) -> str:
        """Names the quantizer and its bitrate, computed from the default config and frame rate."""
        c = self.config("tiny")
        q = c.quantizer
        return (f"VQTalker: {q.name()} motion tokens (G={q.groups} x R={q.residual} x {q.codes} codes = "
                f"{c.bitrate() / 1000:.1f} kbps at {c.fps} fps) + coarse-to-fine token generator")

    def options(self):
        return driver.OPTIONS

    def config(self, preset: str = "tiny"):
        from edgeth.models.vqtalker.config import preset as get_preset

        return get_preset(preset)

    def train(self, data_dir: Path, out: Path, *, preset: str = "tiny", stage: int | None = None,
              max_steps: int | None = None, device: str | None = None, seed: int = 0, resume: bool = True,
              **kw: Any) -> Path:
        from edgeth.models.vqtalker.training import train

        return train(data_dir, out, preset=preset, stage=stage, max_steps=max_steps, device=device, seed=seed,
                     resume=resume, **kw)

    def load(self, run_dir: Path, device: str = "cpu") -> Any:
        from edgeth.models.vqtalker.run import load_run

        return load_run(run_dir, device)

    def fresh(self, preset: str = "tiny", seed: int = 0) -> Any:
        from edgeth.models.vqtalker.run import fresh_run

        return fresh_run(self.config(preset), seed=seed)

    def fixture_run(self, out: Path, corpus: Path) -> Path:
        """The tiny run the tests and the conformance suite share (about a minute on 2 cores)."""
        import torch

        torch.set_num_threads(2)
        return self.train(Path(corpus), Path(out), preset="tiny", device="cpu", seed=0, progress=False,
                          overrides={"tokenizer_steps": 150, "generator_steps": 200})

    def drive(self, ckpt: Path, image: Path, driving: Path, out: Path) -> dict[str, Any]:
        """Video-driven mode: `edgeth generate --driving clip.mp4` (see codec.drive_video)."""
        from edgeth.models.vqtalker.codec import drive_video

        return drive_video(Path(ckpt), Path(image), Path(driving), Path(out))

    def programs(self, run: Any) -> list[Program]:
        from edgeth.models.vqtalker.programs import build_programs

        return build_programs(run)

    def pipeline(self, run: Any) -> PipelineSpec:
        from edgeth.models.vqtalker.config import CONTROL_KEYS
        from edgeth.models.vqtalker.programs import ROLES, app_names, program_order

        cfg, q = run.cfg, run.cfg.quantizer
        apps, order = app_names(run), program_order(run)
        quant = {"kind": q.kind, "groups": q.groups, "residual": q.residual, "levels": list(q.levels),
                 "codes": q.codes, "code_dim": q.group_dim, "bits_per_frame": q.bits_per_frame(),
                 "bitrate_bps": cfg.bitrate(), "stage_scale": "(levels - 1) ** -r",
                 "index": "mixed radix of the FSQ digits, first dim least significant"}
        controls = {"keys": list(CONTROL_KEYS), "mean": run.stats["control_mean"], "std": run.stats["control_std"],
                    "smooth_frames": 10.0, "blink_rate": 1 / 75}
        io = {
            "appearance_encoder": {"inputs": ["image"], "outputs": [*apps, "f_g", "f_s"]},
            "speech_tokenizer": {"inputs": ["audio"], "outputs": ["speech_scores"]},
            "control_generator": {"inputs": ["speech_tokens"], "outputs": ["controls"]},
            "token_generator": {"inputs": ["speech_tokens", "f_g", "controls", "tokens", "layer"], "outputs": ["logits"]},
            "renderer": {"inputs": [*apps, "f_g", "indices"], "outputs": ["frames"]},
            "tokenizer_encoder": {"inputs": ["frames"], "outputs": ["f_t"]},
            "quantizer": {"inputs": ["f_t", "f_s"], "outputs": ["cycle_indices", "pre_rounding"]},
        }
        return PipelineSpec(
            kind="vqtalker", programs=order, fps=cfg.fps, image_size=cfg.image_size,
            audio={"sample_rate": 16000, "samples_per_frame": 16000 // cfg.fps, "mels_per_frame": 4,
                   "input": "raw waveform window into speech_tokenizer; token = argmax of its scores"},
            window={"length": cfg.window, "overlap": 0,
                    "pad": "last window's audio zero-padded; frames beyond the audio dropped"},
            normalization={"image": {"range": [0.0, 1.0], "layout": "NCHW", "channels": "RGB", "resize": "bilinear"},
                           "frames": {"range": [0.0, 1.0], "layout": "NCHW"},
                           "controls": "standardized: (raw - mean) / std per key"},
            sampler={"decoding": "argmax", "passes": "R coarse-to-fine passes per window, layer r one-hot"},
            extra={"family": "vqtalker", "preset": cfg.preset, "render_batch": cfg.render_batch,
                   "appearance_outputs": len(apps), "quantizer": quant, "speech_vocab": cfg.speech_vocab,
                   "controls": controls,
                   # near-boundary sources of the indices stage's token parity (host values of io)
                   "token_parity": {"indices": {"pre": "pre_rounding", "logits": "logits"}}},
            stages={"indices": "indices", "speech_tokens": "indices", "frames": "frames"},
            io={k: v for k, v in io.items() if k in order}, roles={k: v for k, v in ROLES.items() if v in order},
            options=self.options(), golden_seconds=1.0)
