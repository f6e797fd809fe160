"""Seeding, data order and batches: what makes a resumed run equal an uninterrupted one.

- seed_everything(seed): python, numpy and torch (CPU + all CUDA devices) RNGs.
- Every training step reseeds those RNGs from (seed, step, rank) (seed_step), so random noise
  drawn inside `training_step` (diffusion timesteps, dropout, augmentation with num_workers=0)
  depends on the step only, never on how many steps ran in this process.
- Data order is a DistributedSampler (shuffle, seeded by cfg.seed, set_epoch per epoch) wrapped
  in ResumableSampler, which can start an epoch part-way through: step s is batch
  s % steps_per_epoch of epoch s // steps_per_epoch, whatever process runs it.
- infinite_batches() walks epochs of a DataLoader until the caller stops; to_device() moves a
  nested dict/list/tuple of tensors.

With num_workers > 0, randomness *inside the dataset* runs in worker processes seeded per epoch,
so it is reproducible for whole epochs but not bit-identical across a mid-epoch resume.
"""
from __future__ import annotations

import random
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from edgeth.errors import InputError


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch RNGs; deterministic=True also pins cuDNN to deterministic kernels."""
    seed = int(seed) % (2**32)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """A well-mixed 32-bit seed for (seed, step, rank)."""
    return int(np.random.SeedSequence([int(seed) % (2**32), int(step), int(rank)]).generate_state(1)[0])


def seed_step(seed: int, step: int, rank: int = 0) -> None:
    seed_everything(step_seed(seed, step, rank))


class ResumableSampler(Sampler[int]):
    """A DistributedSampler whose epoch can start `skip` samples in (for mid-epoch resume)."""

    def __init__(self, dataset: Dataset, rank: int, world_size: int, seed: int, shuffle: bool = True):
        self.base = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle,
                                       seed=int(seed) % (2**32), drop_last=False)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.base.set_epoch(epoch)
        self.skip = int(skip)

    def __iter__(self) -> Iterator[int]:
        return iter(list(self.base)[self.skip:])

    def __len__(self) -> int:
        return len(self.base) - self.skip


class StepBatches:
    """Batches for steps start_step, start_step+1, ... (infinite; epochs follow one another).

    Per-rank epoch of n samples gives n // batch_size full batches (the remainder is dropped so
    every step sees the same batch size); a dataset smaller than one batch per rank is an error.
    """

    def __init__(self, dataset: Dataset, batch_size: int, *, rank: int, world_size: int, seed: int,
                 collate_fn=None, num_workers: int = 0, pin_memory: bool = False):
        try:
            n = len(dataset)  # type: ignore[arg-type]
        except TypeError as e:
            raise InputError("the training dataset has no len()",
                             "use a map-style torch Dataset (with __len__ and __getitem__)") from e
        self.sampler = ResumableSampler(dataset, rank, world_size, seed)
        per_rank = len(self.sampler.base)
        if n == 0 or per_rank < batch_size:
            raise InputError(f"the dataset has {n} samples: fewer than one batch of {batch_size} per process "
                             f"(x {world_size} process(es))", "lower batch_size or add data")
        self.steps_per_epoch = per_rank // batch_size
        self.batch_size = batch_size
        self.generator = torch.Generator()
        self.seed = int(seed)
        self.loader = DataLoader(dataset, batch_size=batch_size, sampler=self.sampler, drop_last=True,
                                 collate_fn=collate_fn, num_workers=num_workers, pin_memory=pin_memory,
                                 persistent_workers=False, generator=self.generator)

    def iterate(self, start_step: int = 0) -> Iterator[Any]:
        epoch, offset = divmod(int(start_step), self.steps_per_epoch)
        while True:
            self.sampler.set_epoch(epoch, skip=offset * self.batch_size)
            self.generator.manual_seed(step_seed(self.seed, epoch, 1 << 20))  # worker seeds per epoch
            yield from self.loader
            epoch, offset = epoch + 1, 0


def to_device(batch: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Move every tensor in a nested dict/list/tuple to `device` (other leaves unchanged)."""
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, dict):
        items = [(k, to_device(v, device, non_blocking)) for k, v in batch.items()]
        try:
            return type(batch)(items)
        except TypeError:  # dict subclasses with other constructors (defaultdict, ...)
            return dict(items)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(to_device(v, device, non_blocking) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device, non_blocking) for v in batch)
    return batch
