"""The registered IF-MDM ModelFamily (seeds/004): train, load, programs, pipeline.

pipeline(run) is data: every number a device app needs to reproduce the motion-diffusion
loop of edgeth.runtime_py.pipelines.motion_diffusion (programs, sampler, windows, audio
frontend, image and motion normalization).

Shape legend: see edgeth.models.ifmdm.programs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeth.models import ModelFamily, register_model
from edgeth.program import PipelineSpec, Program


@register_model("ifmdm")
class IFMDMFamily(ModelFamily):
    presets = ("tiny", "mobile", "paper")
    description = "IF-MDM: implicit face motion diffusion (LIA-style warping renderer + motion DiT)"

    def options(self):
        from edgeth.runtime_py.pipelines.motion_diffusion import OPTIONS

        return OPTIONS

    def config(self, preset: str = "tiny"):
        from edgeth.models.ifmdm.config import preset as get_preset

        return get_preset(preset)

    def train(self, data_dir: Path, out: Path, *, preset: str = "tiny", stage: int | None = None,
              max_steps: int | None = None, device: str | None = None, seed: int = 0, resume: bool = True,
              **kw: Any) -> Path:
        from edgeth.models.ifmdm.training import train

        return train(data_dir, out, preset=preset, stage=stage, max_steps=max_steps, device=device, seed=seed,
                     resume=resume, **kw)

    def load(self, run_dir: Path, device: str = "cpu") -> Any:
        from edgeth.models.ifmdm.run import load_run

        return load_run(run_dir, device)

    def fresh(self, preset: str = "tiny", seed: int = 0) -> Any:
        """An untrained run of a preset (FLOP counts, build checks, export dry runs)."""
        from edgeth.models.ifmdm.run import fresh_run

        return fresh_run(self.config(preset), seed=seed)

    def fixture_run(self, out: Path, corpus: Path) -> Path:
        """The tiny run the tests and the conformance suite share: 240 + 300 steps on CPU (~90 s on
        2 cores), enough for the losses to fall and reconstruction to beat an untrained model."""
        import torch

        torch.set_num_threads(2)
        return self.train(Path(corpus), Path(out), preset="tiny", device="cpu", seed=0, progress=False,
                          overrides={"stage1_steps": 240, "stage2_steps": 300})

    def programs(self, run: Any) -> list[Program]:
        from edgeth.models.ifmdm.programs import build_programs

        return build_programs(run.model.cpu(), run.cfg)

    def pipeline(self, run: Any) -> PipelineSpec:
        from edgeth.models.ifmdm.programs import PROGRAM_ORDER, app_names

        cfg, s2, st = run.cfg, run.cfg.stage2, run.stats
        d = cfg.stage1.motion_dim
        apps = app_names(cfg)
        sampler = {**s2.schedule.to_json(), "steps": s2.steps, "eta": s2.eta, "guidance": s2.guidance,
                   "steps_range": [1, s2.schedule.train_steps], "batch": s2.denoiser_batch,
                   "cond_keep": [[1.0, 1.0], [0.0, 0.0]],
                   "guidance_rule": "uncond + guidance * (cond - uncond) on the denoiser output",
                   "noise_names": ["window{w}/x_T", "window{w}/step{i} (eta > 0 only)"],
                   "timestep_input": "float32 timestep index, one per batch row"}
        window = {"length": s2.window, "overlap": s2.overlap, "blend": s2.blend, "motion_dim": d,
                  "motion_mean": s2.motion_mean_mode, "mean_mix": s2.mean_mix,
                  "motion_mean_modes": ["stable", "evolving", "mix"],
                  "motion_std": float(st.get("sigma_default", 0.1)),
                  "motion_std_quantiles": st.get("sigma_quantiles", []),
                  "chaining": "first overlap - blend frames imposed by inpainting, last blend frames cross-faded "
                              "(weight (j+1)/(blend+1) on the new window); evolving mean = last frame of previous window",
                  "pad": "last window's audio zero-padded; frames beyond the audio dropped"}
        audio = {**run.audio.to_json(), "samples_per_frame": run.audio.sample_rate // cfg.fps,
                 "mels_per_frame": run.audio.mels_per_frame(cfg.fps), "input": "raw waveform into audio_frontend (log-mel), then audio_encoder"}
        normalization = {
            "image": {"range": [0.0, 1.0], "layout": "NCHW", "channels": "RGB", "resize": "bilinear"},
            "frames": {"range": [0.0, 1.0], "layout": "NCHW"},
            "motion_residual_scale": [float(x) for x in st.get("residual_scale", [1.0] * d)],
            "motion_clip": [-1.0, 1.0],
            "motion": "m = motion_mean + x0 * motion_residual_scale",
            "framing": run.framing,  # where the face box sits in the image input (edgeth.runtime_py.face)
        }
        io = {
            "appearance_encoder": {"inputs": ["image"], "outputs": [*apps, "motion_hint"]},
            "audio_frontend": {"inputs": ["audio"], "outputs": ["log_mel"]},
            "audio_encoder": {"inputs": ["log_mel"], "outputs": ["speech_features"]},
            "motion_denoiser": {"inputs": ["x_t", "timestep", "speech_features", "motion_hint", "motion_mean",
                                           "motion_std", "cond_keep"], "outputs": ["prediction"]},
            "renderer": {"inputs": [*apps, "motion_hint", "motion"], "outputs": ["frames"]},
        }
        extra = {"family": "ifmdm", "preset": cfg.preset, "render_batch": cfg.render_batch,
                 "appearance_outputs": len(apps)}
        roles = {"appearance": "appearance_encoder", "audio_frontend": "audio_frontend",
                 "audio_encoder": "audio_encoder", "denoiser": "motion_denoiser", "renderer": "renderer"}
        return PipelineSpec(kind="motion_diffusion", programs=PROGRAM_ORDER, fps=cfg.fps,
                            image_size=cfg.stage1.image_size, audio=audio, sampler=sampler, window=window,
                            normalization=normalization, extra=extra,
                            stages={"motion": "motion", "motion_hint": "motion", "frames": "frames"},
                            io=io, roles=roles, options=self.options())
