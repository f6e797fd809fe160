"""On the device, without edgeth: trtexec arguments from a recipe, and engine provenance.

The exporter copies this file (standard library only) into each bundle as trt_device.py;
build_engine.sh runs it there:
  python3 trt_device.py args RECIPE [OPTIONS]    the trtexec arguments, one per line
  python3 trt_device.py write RECIPE [OPTIONS]   the provenance record after a build
OPTIONS: --dla-core N (Orin DLA, GPU fallback on) --workspace MB --timing-cache FILE --log FILE;
a recipe's "builder" block holds the defaults. The Python builder and runner import it too.

Provenance: a serialized engine only runs on the TensorRT version and GPU model that built it, for the
ONNX it was built from. `<program>.engine.json` records that; the runner compares it with the
current device and refuses a mismatch ("rebuild on this device: sh build_engine.sh").

Record (format edgeth-trt-provenance/1):
  program, engine, engine_sha256, onnx, onnx_sha256, tensorrt (version), gpu {name,
  compute_capability}, l4t (Jetson L4T/JetPack release or null), precision, flags,
  timing_cache (file or null), dla_core (int or null), workspace_mb, builder (trtexec|python)
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

FORMAT = "edgeth-trt-provenance/1"
REBUILD = "rebuild on this device: sh build_engine.sh"


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def record_path(engine_path) -> Path:
    return Path(str(engine_path) + ".json")


def l4t_release(path: str = "/etc/nv_tegra_release") -> str | None:
    """'R36.3.0' style release of a Jetson's L4T (JetPack), None elsewhere."""
    try:
        head = Path(path).read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", head)
    return f"R{m.group(1)}.{m.group(2)}" if m else head.strip("# ").strip()


def gpu_info() -> dict:
    """{"name", "compute_capability"} of GPU 0: torch if present, else nvidia-smi, else the Jetson model."""
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return {"name": torch.cuda.get_device_name(0), "compute_capability": f"{major}.{minor}"}
    except Exception:
        pass
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout.splitlines()[0]
        name, cc = (s.strip() for s in out.rsplit(",", 1))
        return {"name": name, "compute_capability": cc}
    except Exception:
        pass
    try:
        model = Path("/proc/device-tree/model").read_text().strip("\x00\n ")
        return {"name": model, "compute_capability": None}
    except OSError:
        return {"name": None, "compute_capability": None}


def tensorrt_version(build_log: str | None = None) -> str | None:
    """From trtexec's log ("TensorRT version: 10.3.0") if given, else the tensorrt module."""
    if build_log and Path(build_log).exists():
        m = re.search(r"TensorRT version:\s*([\d.]+)", Path(build_log).read_text(errors="replace"))
        if m:
            return m.group(1)
    try:
        import tensorrt

        return tensorrt.__version__
    except Exception:
        return None


def current_device(trt_version: str | None = None, build_log: str | None = None) -> dict:
    return {"tensorrt": trt_version or tensorrt_version(build_log), "gpu": gpu_info(), "l4t": l4t_release()}


def make_record(recipe: dict, folder, device: dict, builder: str, options: dict) -> dict:
    folder = Path(folder)
    engine = folder / recipe["engine"]
    return {
        "format": FORMAT, "program": recipe["program"], "builder": builder,
        "engine": recipe["engine"], "engine_sha256": sha256(engine) if engine.exists() else None,
        "onnx": recipe["onnx"], "onnx_sha256": sha256(folder / recipe["onnx"]),
        "tensorrt": device.get("tensorrt"), "gpu": device.get("gpu") or {}, "l4t": device.get("l4t"),
        "precision": recipe["precision"], "flags": list(recipe.get("flags", [])),
        "timing_cache": options.get("timing_cache"), "dla_core": options.get("dla_core"),
        "workspace_mb": options.get("workspace_mb"),
    }


def write_record(record: dict, engine_path) -> Path:
    dest = record_path(engine_path)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, dest)
    return dest


def mismatches(record: dict | None, device: dict, onnx_sha256: str) -> list[str]:
    """Why an engine with this provenance must not run here ([] = it may)."""
    if not record or record.get("format") != FORMAT:
        return ["the engine has no edgeth provenance record (built by hand or by an older edgeth)"]
    out = []
    if record.get("onnx_sha256") != onnx_sha256:
        out.append("it was built from a different ONNX model than the bundle's")
    if record.get("tensorrt") != device.get("tensorrt"):
        out.append(f"it was built with TensorRT {record.get('tensorrt')}, this device has {device.get('tensorrt')}")
    built, here = record.get("gpu") or {}, device.get("gpu") or {}
    for key, what in (("name", "GPU"), ("compute_capability", "compute capability")):
        if built.get(key) != here.get(key):
            out.append(f"it was built for {what} {built.get(key)}, this device has {here.get(key)}")
    if record.get("l4t") and device.get("l4t") and record["l4t"] != device["l4t"]:
        out.append(f"it was built on L4T {record['l4t']}, this device runs {device['l4t']}")
    return out


def builder_options(recipe: dict, **given) -> dict:
    """The recipe's builder defaults overridden by the given (non-empty) options."""
    opts = dict(recipe.get("builder") or {})
    opts.update({k: v for k, v in given.items() if v not in (None, "")})
    return opts


def trtexec_args(recipe: dict, opts: dict) -> list[str]:
    """recipe["trtexec_args"] + workspace, timing cache and DLA flags from opts."""
    args = list(recipe["trtexec_args"])
    if opts.get("workspace_mb"):
        args.append(f"--memPoolSize=workspace:{int(opts['workspace_mb'])}")
    if opts.get("timing_cache"):
        args.append(f"--timingCacheFile={opts['timing_cache']}")
    if opts.get("dla_core") is not None:
        args += [f"--useDLACore={int(opts['dla_core'])}", "--allowGPUFallback"]
    return args


def _options(argv: list[str]) -> dict:
    """--dla-core N --workspace MB --timing-cache FILE --log FILE (what build_engine.sh passes)."""
    names = {"--dla-core": "dla_core", "--workspace": "workspace_mb", "--timing-cache": "timing_cache", "--log": "log"}
    opts: dict = {}
    for flag, value in zip(argv[::2], argv[1::2]):
        if flag not in names or value.startswith("--") or (names[flag] in ("dla_core", "workspace_mb") and not value.isdigit()):
            raise SystemExit(f"error: bad option {flag} {value} — use --dla-core N, --workspace MB, --timing-cache FILE")
        opts[names[flag]] = int(value) if names[flag] in ("dla_core", "workspace_mb") else value
    if len(argv) % 2:
        raise SystemExit(f"error: option {argv[-1]} needs a value — e.g. --dla-core 0")
    return opts


def main(argv: list[str]) -> int:
    """python3 trt_device.py args|write RECIPE [--dla-core N] [--workspace MB] [--timing-cache F] [--log F]"""
    if len(argv) < 2 or argv[0] not in ("args", "write"):
        print(main.__doc__, file=sys.stderr)
        return 2
    recipe_path = Path(argv[1])
    recipe = json.loads(recipe_path.read_text())
    given = _options(argv[2:])
    log = given.pop("log", None)
    opts = builder_options(recipe, **given)
    if argv[0] == "args":
        print("\n".join(trtexec_args(recipe, opts)))
        return 0
    device = current_device(build_log=log)
    rec = make_record(recipe, recipe_path.parent, device, "trtexec", opts)
    print(f"provenance: {write_record(rec, recipe_path.parent / recipe['engine'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
