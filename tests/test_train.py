"""The shared trainer (edgeth.train), single process on CPU: learning, files, resume, EMA, errors."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from edgeth.errors import EdgethError, InputError
from edgeth.train import TrainConfig, TrainingDiverged, fit, load_weights, lr_at, save_weights, seed_everything
from edgeth.train.ema import EMA
from edgeth.train.selftest import ToyDataset, ToyRegressor

BASE = TrainConfig(max_steps=40, batch_size=16, lr=3e-3, warmup_steps=5, log_every=5, ckpt_every=10, seed=3)


def _model(seed: int = 0, **kw) -> ToyRegressor:
    seed_everything(seed)
    return ToyRegressor(**kw)


def _state(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _file_state(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def _losses(rows):
    return [(r["step"], r["loss"], r["mae"], r["lr"]) for r in rows]


def test_loss_falls_and_files_are_written(tmp_path):
    model = _model()
    res = fit(model, ToyDataset(), BASE.replace(max_steps=60), tmp_path, stage="s1",
              extra_config={"family": "toy", "data": tmp_path}, progress=False)
    assert res.step == 60 and res.resumed_from == 0
    first, last = res.history[0]["loss"], res.history[-1]["loss"]
    assert last < 0.5 * first, (first, last)

    for name in ("s1.safetensors", "s1.json", "s1.optim.safetensors", "s1.log.jsonl"):
        assert (tmp_path / name).is_file(), name
    assert not (tmp_path / "s1.raw.safetensors").exists()  # EMA off: one weights file
    rows = [json.loads(line) for line in (tmp_path / "s1.log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(5, 61, 5))
    assert rows == res.history
    for r in rows:
        assert {"step", "loss", "mae", "grad_norm", "lr", "time", "sec_per_step"} <= set(r)
        assert math.isfinite(r["loss"]) and r["loss"] >= 0
    assert rows[0]["lr"] == pytest.approx(3e-3)

    info = json.loads((tmp_path / "s1.json").read_text())
    assert info["step"] == 60 and info["complete"] and info["world_size"] == 1 and info["seed"] == 3
    assert info["torch_version"] == torch.__version__
    assert info["extra_config"] == {"family": "toy", "data": str(tmp_path)}
    assert TrainConfig.from_dict(info["config"]) == BASE.replace(max_steps=60)

    fresh = _model(seed=99)
    meta = load_weights(fresh, res.weights_path)
    assert meta["step"] == "60"
    assert _max_diff(_state(fresh), _state(model)) == 0.0

    # Already complete: a second call returns at once, loads the weights, logs nothing new.
    other = _model(seed=7)
    again = fit(other, ToyDataset(), BASE.replace(max_steps=60), tmp_path, stage="s1", progress=False)
    assert again.step == 60 and again.resumed_from == 60 and again.history == res.history
    assert _max_diff(_state(other), _state(model)) == 0.0


class _Crash(RuntimeError):
    pass


def _crash_at(step):
    def cb(n, row):
        if n == step:
            raise _Crash(f"simulated crash at {n}")

    return cb


@pytest.mark.parametrize("ema", [0.0, 0.9])
@pytest.mark.parametrize("how", ["stop_at_20", "crash_at_25"])
def test_resume_equals_uninterrupted(tmp_path, how, ema):
    cfg = BASE.replace(ema_decay=ema)
    ref = _model()
    ref_res = fit(ref, ToyDataset(), cfg, tmp_path / "ref", progress=False)

    part = _model()
    if how == "stop_at_20":
        fit(part, ToyDataset(), cfg.replace(max_steps=20), tmp_path / "run", progress=False)
    else:  # checkpoint at 20, logs to 25, then dies: resume must drop log rows 21..25
        with pytest.raises(_Crash):
            fit(part, ToyDataset(), cfg, tmp_path / "run", progress=False, callbacks=[_crash_at(25)])
        assert json.loads((tmp_path / "run/train.json").read_text())["step"] == 20
    resumed = _model(seed=42)  # different init: everything must come from the checkpoint
    res = fit(resumed, ToyDataset(), cfg, tmp_path / "run", progress=False)
    assert res.resumed_from == 20 and res.step == 40

    assert _max_diff(_state(resumed), _state(ref)) <= 1e-6
    assert _max_diff(_file_state(res.weights_path), _file_state(ref_res.weights_path)) <= 1e-6
    if ema:
        assert _max_diff(_file_state(res.raw_weights_path), _file_state(ref_res.raw_weights_path)) <= 1e-6
    assert [r["step"] for r in res.history] == list(range(5, 41, 5))
    for a, b in zip(_losses(res.history), _losses(ref_res.history)):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-7)
    on_disk = [json.loads(x) for x in (tmp_path / "run/train.log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in on_disk] == list(range(5, 41, 5))


def test_ema_weights_differ_from_raw_and_track_them(tmp_path):
    model = _model()
    init = _state(model)
    res = fit(model, ToyDataset(), BASE.replace(max_steps=60, ema_decay=0.9), tmp_path, progress=False)
    raw, ema = _file_state(res.raw_weights_path), _file_state(res.weights_path)
    assert _max_diff(raw, _state(model)) == 0.0  # in-memory model keeps the raw weights

    def dist(a, b):
        return math.sqrt(sum(float(((a[k] - b[k]) ** 2).sum()) for k in a))

    assert dist(ema, raw) > 1e-4  # EMA is not a copy of the raw weights
    assert dist(ema, raw) < 0.5 * dist(raw, init)  # ... but close to them: it tracked training
    assert dist(ema, init) > 0.5 * dist(raw, init)
    info = json.loads((tmp_path / "train.json").read_text())
    assert info["ema"] and info["ema_updates"] == 60


def test_ema_update_rule():
    lin = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(0.0)
    ema = EMA(lin, decay=0.5)
    expected = 0.0
    for n, w in enumerate([1.0, 2.0, 4.0, 8.0]):
        with torch.no_grad():
            lin.weight.fill_(w)
        ema.update(lin)
        d = min(0.5, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * w
        assert float(ema.shadow["weight"]) == pytest.approx(expected)


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    cfg = BASE.replace(max_steps=10, ckpt_every=100)
    a, b, c = _model(), _model(), _model()
    fit(a, ToyDataset(), cfg, tmp_path / "a", progress=False)
    fit(b, ToyDataset(), cfg, tmp_path / "b", progress=False)
    fit(c, ToyDataset(), cfg.replace(seed=4), tmp_path / "c", progress=False)
    assert _max_diff(_state(a), _state(b)) == 0.0
    assert _max_diff(_state(a), _state(c)) > 1e-4


def test_trainable_subset_only_moves_those_params(tmp_path):
    class Head(ToyRegressor):
        def trainable_parameters(self):
            return self.net[3].parameters()

    model = Head()
    before = _state(model)
    fit(model, ToyDataset(), BASE.replace(max_steps=5), tmp_path, progress=False)
    after = _state(model)
    assert torch.equal(before["net.0.weight"], after["net.0.weight"])
    assert not torch.equal(before["net.3.weight"], after["net.3.weight"])
    assert all(p.requires_grad for p in model.parameters())  # flags restored after fit


def test_nan_loss_stops_with_step_and_keeps_last_checkpoint(tmp_path):
    model = _model()

    def poison(n, row):
        if n == 10:
            model.loss_scale = float("nan")

    with pytest.raises(TrainingDiverged, match=r"step 11\b") as ei:
        fit(model, ToyDataset(), BASE, tmp_path, progress=False, callbacks=[poison])
    assert ei.value.exit_code == 1 and "step 10" in ei.value.fix
    assert json.loads((tmp_path / "train.json").read_text())["step"] == 10
    saved = _file_state(tmp_path / "train.safetensors")
    assert all(torch.isfinite(v).all() for v in saved.values())
    assert _max_diff(saved, _state(model)) == 0.0  # the bad step never reached the weights


def test_load_weights_errors(tmp_path):
    with pytest.raises(InputError, match="not found") as ei:
        load_weights(ToyRegressor(), tmp_path / "nope.safetensors")
    assert "nope.safetensors" in str(ei.value)

    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(InputError, match="not a valid safetensors"):
        load_weights(ToyRegressor(), bad)

    path = save_weights(ToyRegressor(hidden=32), tmp_path / "w.safetensors", {"note": "x"})
    with pytest.raises(InputError, match=r"shape mismatch.*net\.0\.weight \(file \(32, 8\) vs model \(16, 8\)\)"):
        load_weights(ToyRegressor(hidden=16), path)

    other = torch.nn.Sequential(torch.nn.Linear(8, 32))
    with pytest.raises(InputError) as ei:
        load_weights(other, path)
    msg = str(ei.value)
    assert "2 missing key(s): 0.weight, 0.bias" in msg and "4 unexpected key(s): net.0.bias" in msg

    wider = torch.nn.Module()
    wider.net = ToyRegressor().net
    wider.extra = torch.nn.Linear(2, 2)
    meta = load_weights(wider, path, strict=False)  # tolerated when not strict
    assert meta["note"] == "x"


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(InputError, match="schedule"):
        TrainConfig(schedule="linear")
    with pytest.raises(InputError, match="fewer than one batch"):
        fit(_model(), ToyDataset(n=8), BASE, tmp_path, progress=False)

    class NoLoss(ToyRegressor):
        def training_step(self, batch):
            return {"mse": super().training_step(batch)["loss"]}

    with pytest.raises(InputError, match="'loss'"):
        fit(NoLoss(), ToyDataset(), BASE, tmp_path / "x", progress=False)
    with pytest.raises(EdgethError, match="training_step"):
        fit(torch.nn.Linear(2, 2), ToyDataset(), BASE, tmp_path / "y", progress=False)


def test_lr_schedule():
    cfg = TrainConfig(lr=1.0, warmup_steps=4, max_steps=14)
    assert [lr_at(cfg, s) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    cos = cfg.replace(schedule="cosine", min_lr_ratio=0.1)
    assert lr_at(cos, 4) == pytest.approx(1.0)
    assert lr_at(cos, 9) == pytest.approx(0.55)
    assert lr_at(cos, 14) == pytest.approx(0.1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (bf16 autocast path); none here")
def test_cuda_bf16_fit(tmp_path):
    model = _model()
    res = fit(model, ToyDataset(), BASE.replace(max_steps=60), tmp_path, device="cuda", progress=False)
    assert next(model.parameters()).is_cuda
    assert res.info["bf16_autocast"] == torch.cuda.is_bf16_supported()
    assert res.history[-1]["loss"] < 0.5 * res.history[0]["loss"]
    cpu = ToyRegressor()
    load_weights(cpu, res.weights_path)
    assert _max_diff(_state(cpu), {k: v.cpu() for k, v in _state(model).items()}) == 0.0


def test_inconsistent_checkpoint_is_refused(tmp_path):
    fit(_model(), ToyDataset(), BASE.replace(max_steps=10), tmp_path, progress=False)
    info_path = tmp_path / "train.json"
    info = json.loads(info_path.read_text())
    info_path.write_text(json.dumps({**info, "step": 5}))
    with pytest.raises(InputError, match="inconsistent"):
        fit(_model(), ToyDataset(), BASE, tmp_path, progress=False)
    info_path.write_text(json.dumps(info))
    (tmp_path / "train.optim.safetensors").unlink()
    with pytest.raises(InputError, match="resume=False"):
        fit(_model(), ToyDataset(), BASE, tmp_path, progress=False)
    res = fit(_model(), ToyDataset(), BASE.replace(max_steps=10), tmp_path, progress=False, resume=False)
    assert res.resumed_from == 0 and res.step == 10 and (tmp_path / "train.optim.safetensors").is_file()
