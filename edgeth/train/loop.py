"""The one training loop every model family uses: `fit(model, dataset, cfg, out_dir)`.

Contract with the model:
- `model.training_step(batch) -> dict`: a scalar tensor "loss" (backpropagated) plus other
  scalars (tensors with one element or numbers) that are averaged and logged; other entries
  are ignored. The batch arrives on the device (nested dict/list/tuple of tensors).
- optional `model.trainable_parameters()`: the parameters to optimize; by default all with
  requires_grad. During fit, every other parameter has requires_grad switched off (restored
  afterwards), so frozen parts cost no gradient and never trip DDP's unused-parameter check.

What fit does: picks the device (cuda if available), joins DDP when launched by torchrun
(edgeth.train.distributed), moves the model there (in place), and runs AdamW steps until
cfg.max_steps with bf16 autocast on CUDA, gradient clipping, optional EMA, per-step seeding
(edgeth.train.determinism) and a tqdm bar on rank 0. A non-finite loss or gradient norm on any
rank stops every rank with TrainingDiverged naming the step; nothing is written at that step,
so the last good checkpoint stays. Rank 0 alone writes the stage files listed in
edgeth.train.checkpoint, every cfg.ckpt_every steps and at the end. Log rows are appended to
{stage}.log.jsonl as they happen and the file is rewritten atomically at each checkpoint; a
resume drops rows newer than the checkpoint. The in-memory model ends with the raw weights
(load `result.weights_path` for the EMA ones). The process group stays up for later fit calls
in the same process and is destroyed at exit (or by edgeth.train.distributed.destroy()).
"""
from __future__ import annotations

import atexit
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import Dataset

import edgeth
from edgeth.errors import EdgethError, InputError
from edgeth.io_utils import write_json
from edgeth.train import checkpoint as ck
from edgeth.train.config import TrainConfig, TrainResult, lr_at
from edgeth.train.determinism import StepBatches, seed_step, to_device
from edgeth.train.distributed import DistInfo, all_reduce_, barrier, destroy, init_from_env, wrap_for_training
from edgeth.train.ema import EMA

# Config fields that may change between a run and its resume without a warning.
_RESUME_FREE = {"max_steps", "log_every", "ckpt_every", "num_workers"}


class TrainingDiverged(EdgethError):
    """The loss or gradient norm became NaN/inf (a failed run: exit 1)."""

    exit_code = 1


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """model.trainable_parameters() if defined, else every parameter with requires_grad (deduplicated)."""
    fn = getattr(model, "trainable_parameters", None)
    params = list(fn()) if callable(fn) else [p for p in model.parameters() if p.requires_grad]
    seen, out = set(), []
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    if not out:
        raise InputError(f"{type(model).__name__} has no trainable parameters",
                         "check trainable_parameters() / requires_grad for this stage")
    return out


def make_optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.AdamW:
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [g for g in ({"params": decay, "weight_decay": cfg.weight_decay},
                          {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def _scalars(out: Any, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    if not isinstance(out, dict) or "loss" not in out:
        got = sorted(out) if isinstance(out, dict) else type(out).__name__
        raise InputError(f"training_step must return a dict with a 'loss' entry (step {step} returned {got})",
                         "return {'loss': scalar_tensor, ...other scalars to log}")
    loss = out["loss"]
    if not (torch.is_tensor(loss) and loss.numel() == 1 and loss.requires_grad):
        raise InputError(f"training_step's 'loss' must be a one-element tensor that requires grad (step {step})",
                         "return the differentiable scalar loss, not a float or a detached tensor")
    logs = {"loss": loss.detach().float().reshape(())}
    for k, v in out.items():
        if k == "loss":
            continue
        if torch.is_tensor(v) and v.numel() == 1:
            logs[k] = v.detach().float().reshape(())
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            logs[k] = torch.tensor(float(v), device=loss.device)
    return loss.reshape(()), logs


def _jsonable(d: dict[str, Any] | None) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(d or {}, default=str))
    except (TypeError, ValueError) as e:
        raise InputError(f"extra_config is not JSON-serialisable ({e})", "pass plain values (str, number, list, dict)") from e


class _Stage:
    """One fit() call: the state it restores, steps and saves."""

    def __init__(self, model, cfg: TrainConfig, out_dir: Path, stage: str, dist: DistInfo, extra: dict[str, Any]):
        self.model, self.cfg, self.out_dir, self.stage, self.dist, self.extra = model, cfg, out_dir, stage, dist, extra
        self.paths = ck.stage_paths(out_dir, stage)
        self.params = trainable_parameters(model)
        self.opt = make_optimizer(self.params, cfg)
        self.ema = EMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.step = 0
        self.last_ckpt = 0
        self.history: list[dict[str, Any]] = []
        dev = dist.device
        self.bf16 = bool(cfg.bf16 and dev.type == "cuda")
        if self.bf16 and not torch.cuda.is_bf16_supported():
            warnings.warn(f"{torch.cuda.get_device_name(dev)} has no bf16 support; training in fp32")
            self.bf16 = False

    # -- restore ---------------------------------------------------------------------------
    def restore(self) -> None:
        saved = ck.read_stage_json(self.out_dir, self.stage)
        if saved is None:
            return
        step = int(saved["step"])
        p = self.paths
        raw = p["raw"] if saved.get("ema") else p["weights"]
        self._expect_step(ck.load_weights(self.model, raw), raw, step)
        if self.ema is not None:
            if saved.get("ema"):
                tensors, meta = ck.read_safetensors(p["weights"])
                self._expect_step(meta, p["weights"], step)
                ck.check_state_keys(self.ema.shadow, tensors, str(p["weights"]))
                self.ema.load_state_dict(tensors, int(saved.get("ema_updates", step)))
            else:
                self.ema = EMA(self.model, self.cfg.ema_decay)  # EMA switched on at resume: start from raw
        if not p["optim"].is_file():
            raise InputError(f"{p['optim']} is missing, so the {self.stage!r} run cannot resume exactly",
                             "restore the file, or pass resume=False to start the stage afresh")
        self._expect_step(ck.load_optimizer(self.opt, p["optim"]), p["optim"], step)
        self._warn_changes(saved)
        self.step = self.last_ckpt = step
        self.history = ck.read_jsonl(p["log"], max_step=step)

    def _expect_step(self, meta: dict[str, str], path: Path, step: int) -> None:
        if ck.step_of(meta, path) != step:
            raise InputError(f"{path} is from step {meta['step']} but {self.paths['json'].name} says step {step}",
                             "the checkpoint is inconsistent (interrupted copy?); pass resume=False or restore it")

    def _warn_changes(self, saved: dict[str, Any]) -> None:
        old, new = saved.get("config", {}), self.cfg.to_dict()
        changed = [f"{k}: {old[k]!r} -> {new[k]!r}" for k in new if k in old and k not in _RESUME_FREE and old[k] != new[k]]
        if int(saved.get("world_size", self.dist.world_size)) != self.dist.world_size:
            changed.append(f"world_size: {saved['world_size']} -> {self.dist.world_size} (data order changes)")
        if changed:
            warnings.warn(f"resuming stage {self.stage!r} with a changed setup: " + "; ".join(changed))

    # -- save ------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return {
            "stage": self.stage, "step": self.step, "max_steps": self.cfg.max_steps,
            "complete": self.step >= self.cfg.max_steps, "config": self.cfg.to_dict(),
            "extra_config": self.extra, "world_size": self.dist.world_size, "seed": self.cfg.seed,
            "torch_version": torch.__version__, "edgeth_version": edgeth.__version__,
            "device_type": self.dist.device.type, "bf16_autocast": self.bf16,
            "ema": self.ema is not None, "ema_updates": self.ema.num_updates if self.ema else 0,
            "trainable_parameters": int(sum(p.numel() for p in self.params)),
            "files": {k: v.name for k, v in self.paths.items() if k != "raw" or self.ema is not None},
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def save(self) -> None:
        """Rank 0: optimizer, weights, then the JSON (the commit marker), then the full log."""
        if not self.dist.is_main:
            return
        meta = {"step": self.step, "stage": self.stage}
        ck.save_optimizer(self.opt, self.paths["optim"], meta)
        if self.ema is not None:
            ck.save_weights(self.model, self.paths["raw"], {**meta, "weights": "raw"})
            ck.save_tensors(self.ema.state_dict(), self.paths["weights"],
                             {**meta, "weights": "ema", "ema_decay": self.cfg.ema_decay})
        else:
            ck.save_weights(self.model, self.paths["weights"], {**meta, "weights": "raw"})
            self.paths["raw"].unlink(missing_ok=True)  # stale, from an earlier run with EMA on
        write_json(self.paths["json"], self.info())
        ck.write_jsonl(self.paths["log"], self.history)
        self.last_ckpt = self.step

    def append_log(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        if self.dist.is_main:
            with open(self.paths["log"], "a") as f:
                f.write(json.dumps(row, sort_keys=True) + "\n")

    def result(self, resumed_from: int) -> TrainResult:
        return TrainResult(step=self.step, history=list(self.history), out_dir=self.out_dir,
                           weights_path=self.paths["weights"],
                           raw_weights_path=self.paths["raw"] if self.ema is not None else None,
                           resumed_from=resumed_from, info=self.info())


def _ensure_dist(device: str | None) -> DistInfo:
    dist = init_from_env(device)
    if dist.owns_group:
        atexit.register(destroy)
    return dist


def fit(model: torch.nn.Module, dataset: Dataset, cfg: TrainConfig, out_dir: Path, *,
        stage: str = "train", collate_fn=None, device: str | None = None, resume: bool = True,
        extra_config: dict | None = None, progress: bool = True,
        callbacks: list[Callable[[int, dict], None]] | None = None) -> TrainResult:
    """Train `model` on `dataset` until cfg.max_steps; see the module docstring for the contract.

    callbacks run on rank 0 after each logged step as callback(step, row).
    """
    if not callable(getattr(model, "training_step", None)):
        raise InputError(f"{type(model).__name__} has no training_step(batch) method",
                         "define training_step(batch) -> {'loss': tensor, ...} on the model")
    if not stage or any(c in stage for c in "/\\") or stage.startswith("."):
        raise InputError(f"invalid stage name {stage!r}", "use a plain name such as 'train' or 'stage1'")
    extra = _jsonable(extra_config)
    dist = _ensure_dist(device)
    out_dir = Path(out_dir)
    model.to(dist.device)
    flags = {p: p.requires_grad for p in model.parameters()}
    try:
        st = _Stage(model, cfg, out_dir, stage, dist, extra)
        keep = {id(p) for p in st.params}
        for p in model.parameters():
            p.requires_grad_(id(p) in keep)
        if resume:
            st.restore()
        start = st.step
        if start < cfg.max_steps:
            _run(st, dataset, collate_fn, progress, callbacks or [])
        elif dist.is_main and not st.paths["json"].is_file():
            st.save()  # max_steps=0 on a fresh stage: still leave the (initial) weights behind
        barrier(dist)
        return st.result(start)
    finally:
        for p, f in flags.items():
            p.requires_grad_(f)


def _run(st: _Stage, dataset: Dataset, collate_fn, progress: bool, callbacks) -> None:
    from tqdm.auto import tqdm

    cfg, dist, model = st.cfg, st.dist, st.model
    dev = dist.device
    net = wrap_for_training(model, dist, cfg.ddp_find_unused)
    batches = StepBatches(dataset, cfg.batch_size, rank=dist.rank, world_size=dist.world_size, seed=cfg.seed,
                          collate_fn=collate_fn, num_workers=cfg.num_workers, pin_memory=dev.type == "cuda")
    if dist.is_main:
        ck.write_jsonl(st.paths["log"], st.history)  # drop rows a crashed run logged past its checkpoint
    bar = tqdm(total=cfg.max_steps, initial=st.step, desc=st.stage, disable=not (progress and dist.is_main),
               dynamic_ncols=True, leave=True)
    was_training = model.training
    model.train()
    sums: dict[str, torch.Tensor] = {}
    n_win, t_win, t_start = 0, time.perf_counter(), time.perf_counter()
    max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
    data = batches.iterate(st.step)
    try:
        while st.step < cfg.max_steps:
            n = st.step + 1  # this update's 1-based number (what logs and errors call "step")
            seed_step(cfg.seed, st.step, dist.rank)
            batch = to_device(next(data), dev, non_blocking=dev.type == "cuda")
            lr = lr_at(cfg, st.step)
            for g in st.opt.param_groups:
                g["lr"] = lr
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=st.bf16):
                out = net(batch)
            loss, logs = _scalars(out, n)
            st.opt.zero_grad(set_to_none=True)
            loss.float().backward()
            gnorm = torch.nn.utils.clip_grad_norm_(st.params, max_norm).detach().float()
            finite = (torch.isfinite(logs["loss"]) & torch.isfinite(gnorm)).float().reshape(1)
            if all_reduce_(finite, dist, "min").item() < 1.0:
                raise TrainingDiverged(
                    f"stage {st.stage!r} diverged at step {n}: loss={logs['loss'].item():.4g}, "
                    f"grad norm={gnorm.item():.4g} on rank {dist.rank} (non-finite on at least one rank)",
                    f"lower lr, set grad_clip, or check the data for NaN/inf; the last good checkpoint "
                    f"(step {st.last_ckpt}) in {st.out_dir} is kept and a rerun resumes from it")
            st.opt.step()
            if st.ema is not None:
                st.ema.update(model)
            st.step = n
            logs["grad_norm"] = gnorm
            for k, v in logs.items():
                sums[k] = sums[k] + v if k in sums else v.clone()
            n_win += 1
            bar.update(1)
            if n % cfg.log_every == 0 or n == cfg.max_steps:
                row = _log_row(st, sums, n_win, lr, time.perf_counter() - t_win, time.perf_counter() - t_start)
                sums, n_win, t_win = {}, 0, time.perf_counter()
                st.append_log(row)
                bar.set_postfix(loss=f"{row['loss']:.4g}", refresh=False)
                if dist.is_main:
                    for cb in callbacks:
                        cb(n, row)
            if n % cfg.ckpt_every == 0 or n == cfg.max_steps:
                st.save()
    finally:
        bar.close()
        model.train(was_training)


def _log_row(st: _Stage, sums: dict[str, torch.Tensor], n_win: int, lr: float, win_s: float,
             elapsed_s: float) -> dict[str, Any]:
    """Means over the window since the last row, averaged over ranks (one all-reduce)."""
    keys = sorted(sums)
    vals = all_reduce_(torch.stack([sums[k] for k in keys]), st.dist, "sum") / (n_win * st.dist.world_size)
    row: dict[str, Any] = {"step": st.step, **dict(zip(keys, (float(v) for v in vals.tolist())))}
    row.update(lr=lr, time=time.time(), elapsed_s=round(elapsed_s, 4), sec_per_step=round(win_s / n_win, 6))
    return row
