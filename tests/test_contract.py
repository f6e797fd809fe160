"""The family contract end to end on a family this test registers itself (no edit elsewhere).

`throwaway`: audio energy per frame -> `tokenizer` (linear + argmax: a stage of kind
`indices`) -> `renderer` (token embedding modulating a conv of the portrait: kind `image`),
with one declared option (`bias`, added to token 0's logit by the host). Registered inside
`registered()`, it must pass the shared conformance case on every runnable target, verify,
a `indices:agreement` budget, `edgeth generate --opt`, the report and the benchmark.
"""
from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

import bundle_support as bs

NAME, KIND = "throwaway", "throwaway_tokens"
SIZE, FEAT, TOKENS, EMB, WIN = 32, 8, 6, 8, 10


def _modules(seed: int):
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class Tokenizer(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(FEAT, TOKENS)

        def forward(self, feats, bias):  # [1, T, F], [1, K] -> [1, T] int64
            return torch.argmax(self.proj(feats) + bias[:, None, :], dim=-1)

    class Renderer(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(TOKENS, EMB)
            self.enc = nn.Conv2d(3, EMB, 3, padding=1)
            self.head = nn.Conv2d(EMB, 3, 3, padding=1)

        def forward(self, image, tokens):  # [1, 3, S, S], [N] -> [N, 3, S, S]
            code = self.embed(tokens)[:, :, None, None]
            return torch.sigmoid(self.head(torch.relu(self.enc(image)) * (1 + code)))

    return Tokenizer().eval(), Renderer().eval()


class Throwaway:
    """A whole family in a test: ModelFamily's interface, nothing registered outside."""

    name = NAME
    presets = ("tiny",)
    description = "contract test family (tokens + renderer)"

    def options(self):
        from edgeth.program import OptionSpec

        return (OptionSpec("bias", "float", 0.0, "added to token 0's logit", min=-5.0, max=5.0),)

    def config(self, preset="tiny"):
        return {"preset": preset}

    def fixture_run(self, out: Path, corpus: Path | None = None) -> Path:
        from safetensors.torch import save_file

        out.mkdir(parents=True, exist_ok=True)
        tok, ren = _modules(0)
        sd = {f"tokenizer.{k}": v for k, v in tok.state_dict().items()}
        sd.update({f"renderer.{k}": v for k, v in ren.state_dict().items()})
        save_file({k: v.contiguous() for k, v in sd.items()}, str(out / "weights.safetensors"))
        (out / f"{NAME}.json").write_text(json.dumps({"family": NAME, "preset": "tiny", "config": {}}))
        return out

    def fresh(self, preset="tiny", seed=0):
        return _modules(seed)

    def load(self, run_dir, device="cpu"):
        from safetensors.torch import load_file

        tok, ren = _modules(0)
        sd = load_file(str(Path(run_dir) / "weights.safetensors"))
        for prefix, m in (("tokenizer.", tok), ("renderer.", ren)):
            m.load_state_dict({k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)})
        return tok, ren

    def reference_files(self, run_dir):
        return [Path(run_dir) / "weights.safetensors", Path(run_dir) / f"{NAME}.json"]

    def programs(self, run):
        import torch

        from edgeth.program import Program, TensorSpec

        tok, ren = run
        return [
            Program("tokenizer", tok, [TensorSpec("features", (1, WIN, FEAT), kind="features"),
                                       TensorSpec("bias", (1, TOKENS), kind="tensor")],
                    [TensorSpec("tokens", (1, WIN), "int64", kind="indices")],
                    (torch.rand(1, WIN, FEAT), torch.zeros(1, TOKENS))),
            Program("renderer", ren, [TensorSpec("image", (1, 3, SIZE, SIZE), kind="image"),
                                      TensorSpec("tokens", (WIN,), "int64", kind="indices")],
                    [TensorSpec("frames", (WIN, 3, SIZE, SIZE), kind="image")],
                    (torch.rand(1, 3, SIZE, SIZE), torch.randint(0, TOKENS, (WIN,)))),
        ]

    def pipeline(self, run):
        from edgeth.program import PipelineSpec

        return PipelineSpec(kind=KIND, programs=("tokenizer", "renderer"), fps=25, image_size=SIZE,
                            audio={"sample_rate": 16000, "samples_per_frame": 640}, window={"length": WIN},
                            stages={"indices": "indices", "frames": "frames"},
                            io={"tokenizer": {"inputs": ["features", "bias"], "outputs": ["indices"]},
                                "renderer": {"inputs": ["image", "indices"], "outputs": ["frames"]}},
                            roles={"tokens": "tokenizer", "renderer": "renderer"}, options=self.options(),
                            golden_seconds=0.8)


def drive(spec, call, *, image, audio, noise, progress=False, bias=None):
    """Per window: frame energies -> tokenizer (argmax) -> renderer on the window's tokens."""
    from edgeth.runtime_py.pipelines import PipelineResult
    from edgeth.runtime_py.pipelines.host import Timed, prepare_image, read_wave, samples_per_frame

    timed, spf = Timed(call), samples_per_frame(spec)
    wave = read_wave(audio)
    n = max(1, math.ceil(wave.size / spf))
    n_win = math.ceil(n / WIN)
    w = np.pad(wave, (0, n_win * WIN * spf - wave.size)).reshape(n_win * WIN, FEAT, spf // FEAT)
    feats = (np.abs(w).mean(-1) * 10).astype(np.float32)
    b = np.zeros((1, TOKENS), np.float32)
    b[0, 0] = 0.0 if bias is None else float(bias)
    img = prepare_image(image, spec.image_size)
    tokens = np.zeros(n_win * WIN, np.int64)
    frames = np.zeros((n_win * WIN, SIZE, SIZE, 3), np.float32)
    for i in range(n_win):
        t = timed(spec.program_for("tokens"), [feats[None, i * WIN:(i + 1) * WIN], b])[0][0]
        tokens[i * WIN:(i + 1) * WIN] = t
        frames[i * WIN:(i + 1) * WIN] = timed(spec.program_for("renderer"), [img, t.astype(np.int64)])[0].transpose(0, 2, 3, 1)
    return PipelineResult(frames=frames[:n], fps=spec.fps, extras={"indices": tokens[:n], "bias": b[0, 0].item(),
                                                                 **timed.extras()})


@contextlib.contextmanager
def registered():
    from edgeth.models import MODELS
    from edgeth.runtime_py.pipelines import PIPELINES

    MODELS.add(NAME, Throwaway())
    PIPELINES.add(KIND, drive)
    try:
        yield
    finally:
        MODELS.unregister(NAME)
        PIPELINES.unregister(KIND)


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    with registered():
        root = tmp_path_factory.mktemp("throwaway")
        yield {"run": Throwaway().fixture_run(root / "run"), "root": root}


@pytest.fixture(scope="module")
def exporter(family, tmp_path_factory):
    from conformance_support import make_exporter

    return make_exporter(lambda name: family["run"], tmp_path_factory, mixed_budget="indices:agreement=0.9")


@pytest.mark.parametrize("precision", ["fp32", "int8", "mixed"])
def test_conformance_case_runs_a_family_registered_here(family, exporter, precision):
    from conformance_support import run_case

    ran = []
    for target in bs.exportable_targets():
        status, reason = run_case(NAME, target, precision, exporter)
        ran.append((target, status))
        if status == "skipped":
            assert reason  # declared in tests/conformance/skips.py
    assert ("onnx", "passed") in ran and ("executorch", "passed") in ran, ran


def test_verify_judges_indices_by_token_agreement(family, exporter):
    from edgeth.bundle.io import load_bundle
    from edgeth.runtime_py.verify import verify_bundle

    bundle = load_bundle(exporter(NAME, "fp32").bundles["onnx"])
    assert bundle.pipeline_spec().stage_kind("indices") == "indices"
    rep = verify_bundle(bundle, "onnxruntime")
    by_name = {c.name: c for c in rep.checks}
    assert "token_agreement" in by_name["quality/pipeline/indices"].metrics
    assert by_name["quality/pipeline/indices"].metrics["token_agreement"] == 1.0
    assert "token_agreement" in by_name["quality/tokenizer/tokens"].metrics
    assert "token_agreement" in by_name["runtime/tokenizer/tokens"].metrics
    assert "psnr_db" in by_name["quality/pipeline/frames"].metrics


def test_budget_names_a_stage_and_lands_in_the_manifest(family, exporter):
    from edgeth.bundle.io import load_bundle
    from edgeth.errors import InputError
    from edgeth.quantize.budget import Budget

    spec = Throwaway().pipeline(Throwaway().load(family["run"]))
    assert str(Budget.parse("indices:agreement=0.95", spec)) == "indices:agreement=0.95"
    with pytest.raises(InputError, match="does not apply"):
        Budget.parse("indices:psnr=30", spec)
    with pytest.raises(InputError, match="stages: indices"):
        Budget.parse("motion:cosine=0.99", spec)
    bundle = load_bundle(exporter(NAME, "mixed").bundles["onnx"])
    tol = bundle.manifest["targets"]["onnx"]["tolerances"]["indices"]
    assert tol["token_agreement"] == 0.9  # the budget, not the table's default


def test_generate_takes_the_family_options(family, tmp_path):
    png, wav = bs.write_media(tmp_path / "media")
    out = tmp_path / "out.mp4"
    r = bs.cli("generate", "--ckpt", str(family["run"]), "--image", str(png), "--audio", str(wav), "-o", str(out),
               "--opt", "bias=2.5", "--quiet", "--no-crop")
    assert r.returncode == 0, r.stderr
    assert out.is_file() and "bias=2.5" in r.stdout
    bad = bs.cli("generate", "--ckpt", str(family["run"]), "--image", str(png), "--audio", str(wav),
                 "-o", str(tmp_path / "bad.mp4"), "--opt", "motion_std=0.5", "--no-crop")
    bs.assert_clean_error(bad, 2, "motion_std", "valid options: bias")
    assert not (tmp_path / "bad.mp4").exists()
    low = bs.cli("generate", "--ckpt", str(family["run"]), "--image", str(png), "--audio", str(wav),
                 "-o", str(tmp_path / "low.mp4"), "--opt", "bias=-9", "--no-crop")
    bs.assert_clean_error(low, 2, "bias", "out of range")
    helptext = bs.cli("generate", "--help").stdout + bs.cli("run", "--help").stdout
    assert helptext.count("throwaway:") == 2 and "bias (float in [-5, 5]" in helptext


def test_report_and_benchmark_handle_it(family, exporter, tmp_path):
    from edgeth.bench.bundle import bench_bundle
    from edgeth.bundle.io import load_bundle
    from edgeth.report import render_report
    from edgeth.report.collect import report_data, run_runnable

    bundle = load_bundle(exporter(NAME, "int8").bundles["onnx"])
    results, _ = run_runnable(bundle, ["onnxruntime"])
    data = report_data(results)
    assert any(t["label"].startswith("onnx") for t in data.tokens)
    assert "indices" in data.summary[0]["stages"]
    html = render_report(data, tmp_path / "report.html").read_text()
    assert "token" in html.lower()
    b = bench_bundle(bundle, backends=["torch", "onnxruntime"], iters=2, pipeline_iters=1, max_seconds=0.5,
                     peak_gflops=1.0, progress=False)
    assert {r["backend"] for r in b["pipeline"]} == {"torch", "onnxruntime"}
