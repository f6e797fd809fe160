"""`edgeth train FAMILY`: train a registered model family from scratch on a clip folder."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("train")
@click.argument("family")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path), help="Clip folder (edgeth data synth DIR).")
@click.option("--preset", default="tiny", show_default=True, help="Model size preset (tiny | mobile | paper).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="RUN/ directory: weights, config, statistics.")
@click.option("--stage", type=int, default=None, help="Train only this stage (default: all stages in order).")
@click.option("--max-steps", type=click.IntRange(min=0), default=None, help="Cap on optimizer steps per stage (smoke runs).")
@click.option("--device", default=None, help="cpu | cuda | cuda:N (default: cuda when present).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--phase", default=None, help="Train only this phase (families that train in phases, e.g. mdcf: "
              "fde | lmae | diffusion | all).")
@click.option("--no-igc", is_flag=True, help="mdcf: phase two without the image-guided consistency loss (ablation).")
@click.option("--end-to-end", is_flag=True, help="mdcf: FDE + LMAE trained together, without TPC (ablation).")
@click.option("--fresh", is_flag=True, help="Ignore checkpoints in RUN/ and start each stage afresh (default: resume).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def cli(family: str, data_dir: Path, preset: str, out: Path, stage: int | None, max_steps: int | None,
        device: str | None, seed: int, phase: str | None, no_igc: bool, end_to_end: bool, fresh: bool, quiet: bool):
    """Train FAMILY (e.g. ifmdm) on a clip folder; resumable, multi-GPU under torchrun.

    \b
    Example:
      edgeth data synth data/ --clips 16 --seconds 4
      edgeth train ifmdm --data data/ --preset tiny --out runs/tiny
      edgeth train ifmdm --data data/ --preset tiny --out runs/tiny --stage 2 --max-steps 200
      edgeth train mdcf --data data/ --out runs/mdcf --phase lmae --no-igc
      torchrun --nproc_per_node=4 -m edgeth train ifmdm --data data/ --preset mobile --out runs/mobile
    """
    from edgeth.errors import InputError
    from edgeth.models import get_model

    fam = get_model(family)
    if preset not in fam.presets:
        raise InputError(f"{family} has no preset {preset!r}", f"choose one of: {', '.join(fam.presets)}")
    flags = {k: v for k, v in (("phase", phase), ("no_igc", no_igc), ("end_to_end", end_to_end)) if v}
    bad = [k for k in flags if k not in fam.train_flags]
    if bad:
        raise InputError(f"{family} does not take --{bad[0].replace('_', '-')}",
                         f"its flags: {', '.join('--' + f.replace('_', '-') for f in fam.train_flags) or '(none)'}")
    run = fam.train(data_dir, out, preset=preset, stage=stage, max_steps=max_steps, device=device, seed=seed,
                    resume=not fresh, progress=not quiet, **flags)
    click.echo(f"trained {family} ({preset}) -> {run}")
