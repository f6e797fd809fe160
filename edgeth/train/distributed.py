"""Process-group plumbing for `torchrun` launches, plus device selection.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT. With WORLD_SIZE > 1,
init_from_env() starts the default process group: nccl when the device is CUDA (one GPU per
local rank), gloo on CPU. Without those variables everything runs as rank 0 of 1 and no
process group is created, so the same code path serves single-process training.

DDP only synchronises gradients through `forward`, so models are wrapped in StepModule, whose
forward calls the inner model's `training_step(batch)`; the loop calls the DDP wrapper.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from edgeth.errors import EdgethError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False  # True when init_from_env created the process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def __iter__(self):
        """Unpacks like the documented tuple: rank, world_size, local_rank, device."""
        return iter((self.rank, self.world_size, self.local_rank, self.device))


def pick_device(device: str | torch.device | None = None, local_rank: int = 0) -> torch.device:
    """None -> cuda (this local rank's GPU) if available, else cpu. Unknown/unavailable -> EdgethError."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise EdgethError(f"unknown device {device!r}", "use 'cpu', 'cuda' or 'cuda:N'") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise EdgethError(f"device {device!r} asked for but CUDA is not available here",
                              "pass device='cpu' (or leave it unset to pick automatically)")
        if dev.index is None:
            dev = torch.device("cuda", local_rank % torch.cuda.device_count())
    return dev


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as e:
        raise EdgethError(f"environment variable {name}={raw!r} is not an integer",
                          "launch with torchrun, or unset the variable") from e


def init_from_env(device: str | torch.device | None = None) -> DistInfo:
    """(rank, world_size, local_rank, device) from the torchrun environment; starts DDP if needed.

    Unpacks as a 4-tuple: `rank, world_size, local_rank, device = init_from_env()`.
    """
    rank = _env_int("RANK", 0)
    world = _env_int("WORLD_SIZE", 1)
    local = _env_int("LOCAL_RANK", rank)
    dev = pick_device(device, local)
    owns = False
    if world > 1:
        import torch.distributed as dist

        if not dist.is_available():
            raise EdgethError("WORLD_SIZE > 1 but this torch build has no torch.distributed",
                              "install a torch build with distributed support, or run one process")
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
            backend = "nccl" if dev.type == "cuda" else "gloo"
            kw = {"device_id": dev} if dev.type == "cuda" else {}
            dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world, **kw)
            owns = True
        rank, world = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank, world, local, dev, owns)


def destroy(info: DistInfo | None = None) -> None:
    """Tear down the process group (only one that init_from_env created, when info is given)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and (info is None or info.owns_group):
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        import torch.distributed as dist

        if info.device.type == "cuda":
            dist.barrier(device_ids=[info.device.index])
        else:
            dist.barrier()


def all_reduce_(t: torch.Tensor, info: DistInfo, op: str = "sum") -> torch.Tensor:
    """In-place all-reduce (sum/min/max) across ranks; a no-op in a single process."""
    if info.distributed:
        import torch.distributed as dist

        dist.all_reduce(t, op={"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}[op])
    return t


class StepModule(torch.nn.Module):
    """forward(batch) = inner.training_step(batch): lets DDP see (and sync) the training step."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, batch):
        return self.inner.training_step(batch)


def wrap_for_training(model: torch.nn.Module, info: DistInfo, find_unused_parameters: bool = False):
    """StepModule(model), inside DistributedDataParallel when running under torchrun."""
    step = StepModule(model)
    if not info.distributed:
        return step
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [info.device.index] if info.device.type == "cuda" else None
    return DDP(step, device_ids=ids, output_device=ids[0] if ids else None,
               find_unused_parameters=find_unused_parameters)
