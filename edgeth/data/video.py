"""Video, audio and image I/O: PyAV for mp4 (H.264 + AAC), scipy for wav, Pillow for images.

Shape legend: T frames, H/W pixels, 3 RGB channels, S audio samples (16 kHz mono).
Every writer is atomic (temp file, then rename); every reader turns a decoding failure into
an InputError that names the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import gcd
from pathlib import Path

import numpy as np

from edgeth.data.limits import check_audio_length, check_image_size, max_audio_seconds, wav_header
from edgeth.errors import InputError
from edgeth.io_utils import atomic_path

SAMPLE_RATE = 16000


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] (clipped) -> uint8, rounded; uint8 passes through."""
    a = np.asarray(rgb)
    if a.dtype == np.uint8:
        return a
    return (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _to_uint8(frames: np.ndarray) -> np.ndarray:
    f = np.asarray(frames)
    if f.dtype != np.uint8 and not np.isfinite(f).all():
        raise InputError("frames contain NaN or inf", "check the model output before writing video")
    f = to_uint8(f)
    if f.ndim != 4 or f.shape[-1] != 3:
        raise InputError(f"frames must be [T, H, W, 3], got {tuple(f.shape)}", "pass RGB frames, channels last")
    return f


@dataclass(frozen=True)
class VideoQuality:
    """An encoder setting for write_mp4 (named in QUALITIES, picked with --video-quality).

    min_side: frames whose short side is below it are upscaled by the smallest integer factor
    that reaches it, nearest-neighbour (every source pixel becomes a k x k block, so 4:2:0
    chroma stays per source pixel and a k x k box-average of the decoded frame gives the source
    size back); 0 keeps the size.
    """

    name: str
    codec: str
    pix_fmt: str
    options: tuple[tuple[str, str], ...]
    min_side: int
    about: str


QUALITIES = {q.name: q for q in (
    VideoQuality("standard", "libx264", "yuv420p", (("crf", "10"), ("preset", "medium"), ("profile", "high")), 256,
                 "H.264 High profile, 4:2:0, CRF 10, frames under 256 px upscaled x k (nearest): plays everywhere"),
    VideoQuality("lossless", "libx264rgb", "rgb24", (("qp", "0"), ("preset", "medium")), 0,
                 "H.264 RGB lossless (High 4:4:4 Predictive, bit-exact): for QA; many players (Safari, phones) refuse it"),
    VideoQuality("compact", "libx264", "yuv420p", (("crf", "17"), ("preset", "veryfast")), 0,
                 "H.264 4:2:0 CRF 17 at native size (the synthetic corpus' setting; small faces lose detail)"),
)}


def video_quality(name: str) -> VideoQuality:
    if name not in QUALITIES:
        raise InputError(f"video quality {name!r} unknown", f"choose one of: {', '.join(QUALITIES)}")
    return QUALITIES[name]


def upscale_factor(h: int, w: int, min_side: int) -> int:
    return max(1, -(-int(min_side) // max(1, min(h, w)))) if min_side else 1


def write_mp4(path, frames: np.ndarray, fps: int = 25, audio: np.ndarray | None = None,
              sample_rate: int = SAMPLE_RATE, quality: "str | VideoQuality" = "standard") -> Path:
    """frames uint8 [T,H,W,3] (or float in [0,1]) -> H.264 mp4 (QUALITIES[quality]), audio muxed as AAC when given."""
    import av

    q = quality if isinstance(quality, VideoQuality) else video_quality(quality)
    f = _to_uint8(frames)
    k = upscale_factor(f.shape[1], f.shape[2], q.min_side)
    if k > 1:
        f = f.repeat(k, axis=1).repeat(k, axis=2)
    t, h, w, _ = f.shape
    ph, pw = h + (h % 2), w + (w % 2)  # 4:2:0 needs even sizes: pad by edge replication
    if (ph, pw) != (h, w):
        f = np.pad(f, ((0, 0), (0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    path = Path(path)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as c:
            vs = c.add_stream(q.codec, rate=Fraction(int(fps), 1))
            vs.width, vs.height, vs.pix_fmt = pw, ph, q.pix_fmt
            vs.options = dict(q.options)
            as_ = None
            if audio is not None:
                as_ = c.add_stream("aac", rate=sample_rate)
                as_.layout = "mono"
            for img in f:
                for pkt in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    c.mux(pkt)
            for pkt in vs.encode():
                c.mux(pkt)
            if as_ is not None:
                _mux_audio(c, as_, audio, sample_rate)
    return path


def _mux_audio(c, stream, audio: np.ndarray, sample_rate: int) -> None:
    import av

    a = np.clip(np.asarray(audio, np.float32).reshape(-1), -1, 1)
    n = 1024
    for i in range(0, len(a), n):
        fr = av.AudioFrame.from_ndarray(a[None, i:i + n].copy(), format="fltp", layout="mono")
        fr.sample_rate = sample_rate
        fr.pts = i
        for pkt in stream.encode(fr):
            c.mux(pkt)
    for pkt in stream.encode():
        c.mux(pkt)


def downscale_box(frames: np.ndarray, k: int) -> np.ndarray:
    """uint8 [T,kH,kW,3] -> uint8 [T,H,W,3]: k x k box average (undoes write_mp4's nearest upscale)."""
    f = np.asarray(frames)
    if k == 1:
        return f
    t, h, w, c = f.shape
    return (f[:, :h - h % k, :w - w % k].reshape(t, h // k, k, w // k, k, c).mean((2, 4)) + 0.5).astype(np.uint8)


def read_video(path) -> tuple[np.ndarray, float]:
    """-> (frames uint8 [T,H,W,3], fps)."""
    import av

    path = Path(path)
    if not path.is_file():
        raise InputError(f"video not found: {path}", "check the path")
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise InputError(f"{path} has no video stream", "pass an mp4 with a video track")
            vs = c.streams.video[0]
            fps = float(vs.average_rate or vs.guessed_rate or 25)
            frames = [fr.to_ndarray(format="rgb24") for fr in c.decode(video=0)]
    except InputError:
        raise
    except Exception as e:  # PyAV raises many types for corrupt files
        raise InputError(f"cannot decode video {path}: {type(e).__name__}: {e}", "re-encode it (H.264 mp4) or remove it") from None
    if not frames:
        raise InputError(f"{path} has no decodable frames", "re-encode it or remove it")
    return np.stack(frames), fps


def resample(audio: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    from scipy.signal import resample_poly

    a = np.asarray(audio, np.float32)
    if sr_in == sr_out:
        return a
    g = gcd(int(sr_in), int(sr_out))
    return resample_poly(a, sr_out // g, sr_in // g).astype(np.float32)


def _wav(path: Path) -> tuple[np.ndarray, int]:
    import warnings

    from scipy.io import wavfile

    h = wav_header(path)  # refuses a truncated file before reading samples
    check_audio_length(path, h.frames / max(h.rate, 1), h.rate)
    with warnings.catch_warnings():
        warnings.simplefilter("error", wavfile.WavFileWarning)  # a damaged file is an error, not a warning
        sr, data = wavfile.read(str(path))
    return pcm_to_float(data), int(sr)


def pcm_to_float(data: np.ndarray) -> np.ndarray:
    """wav samples (int16/int32/uint8 PCM or float) -> float32 in [-1, 1]."""
    if data.dtype == np.int16:
        return data.astype(np.float32) / 32768.0
    if data.dtype == np.int32:
        return data.astype(np.float32) / 2147483648.0
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    return data.astype(np.float32)


def _av_audio(path: Path) -> tuple[np.ndarray, int]:
    import av

    with av.open(str(path)) as c:
        if not c.streams.audio:
            raise InputError(f"{path} has no audio track", "add one, or put a .wav with the same name beside it")
        st = c.streams.audio[0]
        rate = int(st.rate or st.sample_rate or 0)
        check_audio_length(path, float(c.duration or 0) / 1e6, rate, whole=False)  # duration from the header
        chunks, n, cap = [], 0, max_audio_seconds() * rate
        for fr in c.decode(audio=0):
            n += fr.samples
            if n > cap:  # the container did not tell its length: stop decoding at the limit
                check_audio_length(path, n / rate, rate, whole=False)
            x = fr.to_ndarray().astype(np.float32)
            if fr.format.is_planar:  # [channels, n]
                chunks.append(x.T)
            else:  # interleaved [1, n*channels]
                chunks.append(x.reshape(-1, len(fr.layout.channels)))
        sr = rate
    if not chunks:
        raise InputError(f"{path} has an empty audio track", "re-encode it with audio")
    return np.concatenate(chunks, axis=0), sr


def read_audio(path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Any wav (rate, channels, int/float) or a video's audio track -> float32 mono [S] at sample_rate."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"audio not found: {path}", "check the path")
    try:
        a, sr = _wav(path) if path.suffix.lower() == ".wav" else _av_audio(path)
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"cannot read audio {path}: {type(e).__name__}: {e}", "pass a PCM .wav or an mp4 with an audio track") from None
    if a.ndim == 2:
        a = a.mean(axis=1)
    if a.size == 0:
        raise InputError(f"{path} holds no audio samples", "pass a non-empty recording")
    check_audio_length(path, a.shape[0] / sr, sr)
    a = resample(a, sr, sample_rate)
    if not np.isfinite(a).all():
        raise InputError(f"{path} contains NaN/inf samples", "re-export the audio")
    return a


def write_wav(path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    from scipy.io import wavfile

    a = (np.clip(np.asarray(audio, np.float32).reshape(-1), -1, 1) * 32767.0).round().astype(np.int16)
    with atomic_path(path) as tmp:
        wavfile.write(str(tmp), sample_rate, a)
    return Path(path)


def center_crop_resize(img: np.ndarray, size: int) -> np.ndarray:
    """uint8 [H,W,3] -> uint8 [size,size,3]: centre square crop, then area/bicubic resize."""
    from edgeth.runtime_py.face import centre_box, crop

    return crop(img, centre_box(*img.shape[:2]), size)


def read_image(path, size: int | None = None) -> np.ndarray:
    """Any image -> float32 [H,W,3] in [0,1] (centre-cropped square and resized when size is given)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"image not found: {path}", "check the path")
    try:
        with Image.open(path) as im:  # reads the header only
            check_image_size(path, *im.size)
            img = _rgb8(im)
    except Image.DecompressionBombError as e:
        raise InputError(f"image {path} is refused before decoding: {e}", "downscale it") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputError(f"cannot read image {path}: {e}", "pass a PNG or JPEG portrait") from None
    if size is not None:
        img = center_crop_resize(img, size)
    return img.astype(np.float32) / 255.0


def _rgb8(im) -> np.ndarray:
    """uint8 [H,W,3] of any Pillow mode: 16/32-bit greyscale is scaled, not clipped at 255."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        a = np.asarray(im, dtype=np.float64)
        if im.mode == "F" and np.isfinite(a).all() and a.max(initial=0) <= 1.0:
            a = a * 65535.0  # float greyscale in [0, 1]
        if not np.isfinite(a).all():
            raise ValueError("image holds NaN/inf pixel values")
        g = (np.clip(a, 0, 65535) / 257.0 + 0.5).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=-1)
    return np.asarray(im.convert("RGB"))


def write_png(path, image: np.ndarray) -> Path:
    from PIL import Image

    img = _to_uint8(np.asarray(image)[None])[0]
    with atomic_path(path) as tmp:
        Image.fromarray(img).save(tmp, format="PNG")
    return Path(path)
