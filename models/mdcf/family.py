"""The registered MDCF ModelFamily (seeds/001, Microscope): train, load, programs, pipeline.

pipeline(run) is data: every number a device app needs to reproduce the latent video
diffusion loop of models/mdcf/driver.py (programs and their wiring, sampler, windows and
their blending, latent scale, audio frontend, image normalization).

Shape legend: see edgeth.models.mdcf.programs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeth.models import ModelFamily, register_model
from edgeth.models.mdcf import driver  # noqa: F401 (registers the "latent_video_diffusion" driver)
from edgeth.program import PipelineSpec, Program

ROLES = {"source": "source_encoder", "audio_frontend": "audio_frontend", "audio_encoder": "audio_encoder",
         "pose": "pose_blink_generator", "denoiser": "latent_denoiser", "lmae_decoder": "lmae_decoder",
         "renderer": "renderer"}


@register_model("mdcf")
class MDCFFamily(ModelFamily):
    presets = ("tiny", "mobile", "paper")
    description = "MDCF (Microscope): FDE + LMAE 768x dynamics compression, factorized latent video diffusion"
    train_flags = ("phase", "no_igc", "end_to_end")

    def options(self):
        return driver.OPTIONS

    def config(self, preset: str = "tiny"):
        from edgeth.models.mdcf.config import preset as get_preset

        return get_preset(preset)

    def train(self, data_dir: Path, out: Path, *, preset: str = "tiny", stage: int | None = None,
              max_steps: int | None = None, device: str | None = None, seed: int = 0, resume: bool = True,
              **kw: Any) -> Path:
        from edgeth.errors import InputError
        from edgeth.models.mdcf.training import train

        if stage is not None:
            raise InputError("mdcf trains in phases, not stages", "pass --phase fde|lmae|diffusion|all")
        return train(data_dir, out, preset=preset, max_steps=max_steps, device=device, seed=seed, resume=resume, **kw)

    def load(self, run_dir: Path, device: str = "cpu") -> Any:
        from edgeth.models.mdcf.run import load_run

        return load_run(run_dir, device)

    def fresh(self, preset: str = "tiny", seed: int = 0) -> Any:
        from edgeth.models.mdcf.run import fresh_run

        return fresh_run(self.config(preset), seed=seed)

    def fixture_run(self, out: Path, corpus: Path) -> Path:
        """The tiny run the tests and the conformance suite share: 200 + 150 + 200 steps of the
        three phases (about 55 s of CPU; one thread: two lost 50x under a loaded machine)."""
        import torch

        prev = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self.train(Path(corpus), Path(out), preset="tiny", device="cpu", seed=0, progress=False,
                              overrides={"fde_steps": 200, "lmae_steps": 150, "diffusion_steps": 200})
        finally:
            torch.set_num_threads(prev)

    def programs(self, run: Any) -> list[Program]:
        from edgeth.models.mdcf.programs import build_programs

        return build_programs(run.model.cpu(), run.cfg)

    def pipeline(self, run: Any) -> PipelineSpec:
        from edgeth.models.mdcf.config import compression
        from edgeth.models.mdcf.programs import PROGRAM_ORDER

        cfg, d = run.cfg, run.cfg.diffusion
        s, q, zs = cfg.fde.image_size, cfg.fde.dyn_size, cfg.latent_shape()
        sampler = {**d.schedule.to_json(), "steps": d.steps, "eta": d.eta, "guidance": d.guidance,
                   "steps_range": [1, d.schedule.train_steps], "timestep_input": "float32 [1]",
                   "noise_names": ["latent/x_T [N, Z, h, h]", "latent/x_T_pad (frames padding the last window)",
                                   "latent/step{i} (eta > 0 only)"],
                   "loop": "DDIM over the whole latent sequence; every step runs latent_denoiser on each window "
                           "and cross-fades the windows' predictions over their overlaps"}
        window = {"length": d.window, "overlap": d.overlap, "nar": "auto", "nar_modes": ["auto", "global", "windowed"],
                  "latent_shape": list(zs),
                  "blend": "overlap frames cross-faded, weight (j+1)/(overlap+1) on the later window (latents every "
                           "DDIM step; speech features and rho once)",
                  "global": "one window over the clip when it fits (N <= length), padded with x_T_pad noise and "
                            "zero audio",
                  "pad": "last window's audio zero-padded; frames beyond the audio dropped"}
        audio = {**run.audio.to_json(), "samples_per_frame": run.audio.sample_rate // cfg.fps,
                 "mels_per_frame": run.audio.mels_per_frame(cfg.fps),
                 "input": "raw waveform into audio_frontend (log-mel), then audio_encoder"}
        scale = [float(x) for x in run.stats.get("latent_scale", [1.0] * zs[0])]
        normalization = {"image": {"range": [0.0, 1.0], "layout": "NCHW", "channels": "RGB", "resize": "bilinear"},
                         "frames": {"range": [0.0, 1.0], "layout": "NCHW"}, "latent_scale": scale,
                         "latent": "z = x0 * latent_scale (per channel) + latent_origin (source_encoder's output: "
                                   "the LMAE code of the portrait's own, motionless dynamics), before lmae_decoder"}
        ratios = compression((3, s, s), (3, q, q), zs)
        extra = {"family": "mdcf", "preset": cfg.preset, "render_batch": cfg.render_batch, "mode": run.mode,
                 "compression": {k: ratios[k] for k in ("fde", "lmae", "mdcf")}}
        io = {"source_encoder": {"inputs": ["image"], "outputs": ["source_features", "context", "latent_origin"]},
              "audio_frontend": {"inputs": ["audio"], "outputs": ["log_mel"]},
              "audio_encoder": {"inputs": ["log_mel"], "outputs": ["speech_features"]},
              "pose_blink_generator": {"inputs": ["speech_features"], "outputs": ["rho"]},
              "latent_denoiser": {"inputs": ["z_t", "timestep", "speech_features", "rho", "context"],
                                  "outputs": ["prediction"]},
              "lmae_decoder": {"inputs": ["latent"], "outputs": ["dynamics"]},
              "renderer": {"inputs": ["image", "source_features", "dynamics"], "outputs": ["frames"]}}
        return PipelineSpec(kind="latent_video_diffusion", programs=PROGRAM_ORDER, fps=cfg.fps, image_size=s,
                            audio=audio, sampler=sampler, window=window, normalization=normalization, extra=extra,
                            stages={"x0": "latent", "latent": "latent", "rho": "motion", "frames": "frames"}, io=io, roles=ROLES,
                            options=self.options(), golden_seconds=1.2)
