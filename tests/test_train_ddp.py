"""The trainer under `torchrun --nproc_per_node=2` on CPU (gloo): both ranks end with identical weights."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch.distributed as dist

from edgeth.train.selftest import ToyRegressor, weights_digest


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="torch built without gloo")
def test_two_process_ddp_ranks_agree(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "edgeth.train.selftest", "--out", str(out), "--steps", "40"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    r0, r1 = (json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world_size"] == r1["world_size"] == 2 and r0["step"] == r1["step"] == 40
    # The ranks started from different random inits (DDP broadcasts rank 0's) ...
    assert r0["init_digest"] != r1["init_digest"]
    # ... trained on disjoint shards of each epoch ...
    assert r0["first_epoch"] and not set(r0["first_epoch"]) & set(r1["first_epoch"])
    # ... and still end bit-identical, away from the init, with a falling (rank-averaged) loss.
    assert r0["final_digest"] == r1["final_digest"]
    assert r0["final_digest"] != r0["init_digest"]
    assert r0["last_loss"] == r1["last_loss"] < 0.5 * r0["first_loss"]

    # Only rank 0 wrote the stage files, and they hold the weights both ranks ended with.
    info = json.loads((out / "selftest.json").read_text())
    assert info["world_size"] == 2 and info["step"] == 40
    from edgeth.train import load_weights

    m = ToyRegressor()
    load_weights(m, out / "selftest.safetensors")
    assert weights_digest(m) == r0["final_digest"]
