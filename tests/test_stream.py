"""Streaming runtime (issue 15): frames from speech arriving in chunks equal the offline run's,
frames leave before the speech has all arrived, latency figures from a timeline, `edgeth run
--stream`. No timing is asserted (speed stays out of tests)."""
from __future__ import annotations

import numpy as np
import pytest

import bundle_support as bs
from edgeth.runtime_py.pipelines import FrameChunk, PipelineResult, SeededNoise, collect, get_pipeline, stream_driver


@pytest.fixture(scope="module")
def tiny_ifmdm():
    """(spec, call) of an untrained tiny IF-MDM: the motion_diffusion driver's real programs, eager."""
    import torch

    from edgeth.models import get_model
    from edgeth.runtime_py.torch_backend import torch_call

    torch.manual_seed(0)
    fam = get_model("ifmdm")
    run = fam.fresh("tiny")
    progs = fam.programs(run)
    with torch.no_grad():  # untrained output layers are zero: jitter every weight so motion varies per frame
        for p in progs:
            for w in p.module.parameters():
                w.add_(0.05 * torch.randn_like(w))
    return fam.pipeline(run), torch_call(progs, threads=1)


class Pulls:
    """Chunks of `n` samples, counting how many samples the driver has pulled."""

    def __init__(self, audio: np.ndarray, n: int):
        self.audio, self.n, self.pulled = audio, n, 0

    def __iter__(self):
        for i in range(0, self.audio.size, self.n):
            self.pulled = min(self.audio.size, i + self.n)
            yield self.audio[i:i + self.n]


@pytest.mark.parametrize("seconds", [2.37, 0.5])
def test_streamed_motion_diffusion_equals_offline_bit_for_bit(tiny_ifmdm, seconds):
    spec, call = tiny_ifmdm
    rng = np.random.default_rng(1)
    audio = (rng.standard_normal(int(16000 * seconds)) * 0.1).astype(np.float32)
    image = rng.random((64, 64, 3)).astype(np.float32)
    drive = get_pipeline(spec.kind)
    assert getattr(drive, "stream", None) is not None  # motion_diffusion streams natively
    offline = drive(spec, call, image=image, audio=audio, noise=SeededNoise(5), steps=2)
    for n in (3200, 777, audio.size):  # 200 ms chunks, odd chunks, one chunk
        pulls = Pulls(audio, n)
        gen = drive.stream(spec, call, image=image, chunks=pulls, noise=SeededNoise(5), steps=2)
        first = next(gen)
        assert isinstance(first, FrameChunk) and first.start == 0
        if seconds > 1 and n < audio.size:  # the first frames leave before the speech has all arrived
            assert pulls.pulled < audio.size / 2, (n, pulls.pulled)

        def rest(first=first, gen=gen):
            yield first
            return (yield from gen)

        streamed = collect(rest())
        np.testing.assert_array_equal(streamed.frames, offline.frames)
        np.testing.assert_array_equal(streamed.extras["motion"], offline.extras["motion"])
        assert streamed.extras["window_starts"] == offline.extras["window_starts"]
    assert len(offline.frames) == int(np.ceil(audio.size / 640))
    # every frame comes from the final motion (none left before a later window changed its code)
    from edgeth.runtime_py.pipelines.host import prepare_image, render_batched

    app = call("appearance_encoder", [prepare_image(image, spec.image_size)])
    ref = render_batched(call, "renderer", [*app[:-1], app[-1].reshape(1, -1)], offline.extras["motion"],
                         spec.extra["render_batch"], spec.image_size)
    np.testing.assert_array_equal(offline.frames, np.clip(ref, 0.0, 1.0))
    assert np.abs(np.diff(offline.extras["motion"], axis=0)).max() > 1e-3  # frames differ: the checks can fail


def test_audio_buffer_reads_what_the_padded_wave_holds():
    from edgeth.errors import InputError
    from edgeth.runtime_py.pipelines.host import AudioBuffer

    wave = np.arange(1, 1001, dtype=np.float32)
    buf = AudioBuffer(np.split(wave, [7, 300, 301, 640]))
    assert buf.fill(500) and buf.received == 640 and not buf.ended
    np.testing.assert_array_equal(buf.read(10, 400), wave[10:400])
    buf.release(200)
    assert not buf.fill(2000) and buf.ended and buf.received == 1000
    np.testing.assert_array_equal(buf.read(900, 1100), np.pad(wave, (0, 100))[900:1100])
    with pytest.raises(InputError, match="empty"):
        AudioBuffer([]).fill(1)
    with pytest.raises(InputError, match="NaN"):
        AudioBuffer([np.array([0.0, np.nan])]).fill(1)


def test_driver_without_stream_is_streamed_offline():
    calls = []

    def drive(spec, call, *, image, audio, noise, progress=False, k=1.0):
        calls.append(audio.size)
        return PipelineResult(frames=np.full((3, 2, 2, 3), k * audio.sum(), np.float32), fps=25, extras={"n": 3})

    gen = stream_driver(drive)(None, None, image=None, chunks=[np.ones(5), np.ones(2)], noise=None, k=2.0)
    res = collect(gen)
    assert calls == [7] and res.frames.shape == (3, 2, 2, 3) and res.frames[0, 0, 0, 0] == 14.0
    assert res.extras == {"n": 3}


def test_stream_figures_replay_compute_against_real_time_speech():
    from edgeth.bench.stream import stream_figures

    sr, fps = 1000, 10  # 100 ms chunks of 100 samples, arriving at 0.1, 0.2, ... s
    ev = [("chunk", k, 0.01 * k, 0.01 * k, 100) for k in range(3)]  # all at hand: pulled at once
    ev += [("frame", i, 0.05 + 0.01 * i, 0.05 + 0.01 * i, 0) for i in range(2)]  # compute 30 ms after the last pull
    ev += [("chunk", 3, 0.10, 0.20, 100)]  # the source itself blocks 100 ms: not compute
    ev += [("frame", 2, 0.35, 0.35, 0), ("frame", 3, 0.36, 0.36, 0)]
    f = stream_figures(ev, 0.0, sr, fps)
    # paced: chunk 2 complete at 0.3 s -> frames at 330, 340 ms; 40 ms more compute, then chunk 3
    # complete at 0.4 s -> 150 ms compute -> frames at 550, 560 ms
    assert f["frames"] == 4
    assert f["first_frame_ms"] == pytest.approx(330)
    assert f["worst_gap_ms"] == pytest.approx(550 - 340)
    assert f["playback_delay_ms"] == pytest.approx(550 - 200)  # frame 2 is due 200 ms after frame 0
    assert f["compute_first_ms"] == pytest.approx(50)
    assert f["rtf"] == pytest.approx(0.36 / 0.4)  # all compute, per second of the 4 frames' video
    # one window over the whole clip (global NAR): every frame at once after the last chunk; the
    # factor still counts all the compute (it read 0.00 when taken between the first and last frame)
    burst = stream_figures([("chunk", k, 0.01 * k, 0.01 * k, 100) for k in range(4)]
                           + [("frame", i, 0.5 + 1e-4 * i, 0.5 + 1e-4 * i, 0) for i in range(4)], 0.0, sr, fps)
    assert burst["frames"] == 4 and burst["first_frame_ms"] == pytest.approx(870)
    assert burst["rtf"] == pytest.approx(0.5003 / 0.4)


@pytest.fixture(scope="module")
def _family():
    with bs.registered():
        yield


def test_pipeline_stream_and_cli_stream_equal_offline(_family, fixture_bundle, tmp_path):
    from edgeth.bundle.io import load_bundle
    from edgeth.runtime_py.pipeline import Pipeline
    from edgeth.runtime_py.stream import split_audio

    b = load_bundle(fixture_bundle["bundle"])
    g = b.pipeline_golden()
    pipe = Pipeline(b, "torch")
    fs = pipe.stream(g["image"], split_audio(g["audio"], 1000), seed=3)
    frames = np.stack(list(fs))
    np.testing.assert_array_equal(frames, pipe.run(g["image"], g["audio"], seed=3).frames)
    assert fs.result.fps == 25 and [e[0] for e in fs.events].count("frame") == len(frames)

    png, wav = bs.write_media(tmp_path / "media", seconds=0.9)
    outs = {}
    for mode in ("offline", "stream"):
        npz = tmp_path / f"{mode}.npz"
        args = ["--stream", "--chunk-ms", "120"] if mode == "stream" else []
        r = bs.cli("run", str(fixture_bundle["bundle"]), "--image", str(png), "--audio", str(wav), "--backend",
                   "torch", "-o", str(tmp_path / f"{mode}.mp4"), "--seed", "3", "--npz", str(npz), "--no-crop", *args)
        assert r.returncode == 0, r.stderr[-2000:]
        outs[mode] = np.load(npz)["frames"]
    assert "streamed in 120 ms chunks: first frame" in r.stdout and "real-time factor" in r.stdout
    np.testing.assert_array_equal(outs["stream"], outs["offline"])
    other = tmp_path / "44k.wav"
    from edgeth.data.video import read_audio, write_wav

    write_wav(other, read_audio(wav, 44100), 44100)
    r = bs.cli("run", str(fixture_bundle["bundle"]), "--image", str(png), "--audio", str(other), "--backend", "torch",
               "-o", str(tmp_path / "x.mp4"), "--no-crop", "--stream")
    assert r.returncode == 2 and "44100 Hz" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.mp4").exists()
