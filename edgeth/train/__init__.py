"""The shared trainer: one loop (fit) used by every model family, on CPU or CUDA, DDP under torchrun.

    from edgeth.train import TrainConfig, fit, load_weights
    result = fit(model, dataset, TrainConfig(max_steps=2000, batch_size=16), Path("runs/x"), stage="stage1")
    load_weights(model, result.weights_path)

Files per stage, resume and determinism rules: edgeth.train.loop, edgeth.train.checkpoint,
edgeth.train.determinism. A 2-process smoke test: `torchrun --nproc_per_node=2 -m edgeth.train.selftest --out DIR`.
Imports torch (not executorch & co.); `import edgeth` itself never imports this package.
"""
from edgeth.train.checkpoint import load_weights, read_stage_json, save_weights, stage_paths
from edgeth.train.config import TrainConfig, TrainResult, lr_at
from edgeth.train.determinism import seed_everything, to_device
from edgeth.train.distributed import destroy, init_from_env
from edgeth.train.loop import TrainingDiverged, fit, trainable_parameters

__all__ = [
    "TrainConfig", "TrainResult", "TrainingDiverged", "fit", "lr_at", "load_weights", "save_weights",
    "read_stage_json", "stage_paths", "seed_everything", "to_device", "init_from_env", "destroy",
    "trainable_parameters",
]
