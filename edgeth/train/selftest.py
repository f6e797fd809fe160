"""A toy regression job for the trainer; also the 2-process DDP smoke test.

    OMP_NUM_THREADS=1 python -m torch.distributed.run --standalone --nproc_per_node=2 \\
        -m edgeth.train.selftest --out /tmp/ddp

Every rank trains the same small MLP (ToyRegressor) on its own shard of ToyDataset (a fixed
random teacher network's outputs) and writes `rank{R}.json`: digests of its initial and final
weights, its first and last logged loss and the sample indices it drew in the first epoch. Rank 0 also writes the
usual stage files. After a correct DDP run every rank's final digest is identical, the digests
differ from the initial ones, the loss fell, and the ranks drew disjoint samples within an epoch.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from edgeth.io_utils import write_json


class ToyDataset(Dataset):
    """y = teacher(x) for n fixed random x; items are {"x", "y", "index"}."""

    def __init__(self, n: int = 256, dim: int = 8, seed: int = 1234):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, dim, generator=g)
        w1, w2 = torch.randn(dim, 16, generator=g), torch.randn(16, 1, generator=g)
        self.y = torch.tanh(self.x @ w1) @ w2 / 4.0

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i], "index": torch.tensor(i)}


class ToyRegressor(nn.Module):
    """A 2-layer MLP with dropout (so per-step RNG matters) and the trainer's training_step."""

    def __init__(self, dim: int = 8, hidden: int = 32, dropout: float = 0.1, loss_scale: float = 1.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1))
        self.loss_scale = loss_scale  # tests set it to nan to force divergence
        self.seen: list[int] = []

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.seen.extend(int(i) for i in batch["index"])
        pred = self.net(batch["x"])
        mse = torch.mean((pred.float() - batch["y"]) ** 2)
        return {"loss": mse * self.loss_scale, "mae": (pred.float() - batch["y"]).abs().mean()}


def weights_digest(module: nn.Module) -> str:
    """sha256 over the state_dict's names, shapes and float32 bytes (sorted by name)."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    from edgeth.train import TrainConfig, destroy, fit, init_from_env, seed_everything

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--ema", type=float, default=0.0)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args(argv)

    rank, world, _, _ = init_from_env(a.device)
    # Different seeds per rank on purpose: DDP must broadcast rank 0's init to every rank.
    seed_everything(100 + rank)
    model = ToyRegressor()
    cfg = TrainConfig(max_steps=a.steps, batch_size=a.batch_size, lr=3e-3, log_every=5, ckpt_every=a.steps,
                      ema_decay=a.ema, seed=0, warmup_steps=5)
    init_before_ddp = weights_digest(model)
    data = ToyDataset()
    res = fit(model, data, cfg, a.out, stage="selftest", device=a.device, progress=rank == 0)
    per_epoch = (len(data) // world) // a.batch_size * a.batch_size  # samples one rank sees per epoch
    write_json(a.out / f"rank{rank}.json", {
        "rank": rank, "world_size": world, "step": res.step,
        "init_digest": init_before_ddp, "final_digest": weights_digest(model),
        "first_loss": res.history[0]["loss"], "last_loss": res.history[-1]["loss"],
        "first_epoch": model.seen[:per_epoch], "n_seen": len(model.seen),
    })
    destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
