"""Core plumbing: atomic outputs, the error family's CLI mapping, registries, contracts."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from edgeth.errors import EdgethError, InputError
from edgeth.io_utils import atomic_path, sha256_file, write_json
from edgeth.program import PipelineSpec, TensorSpec
from edgeth.registry import Registry


def test_atomic_file_interrupted_leaves_nothing(tmp_path):
    dest = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("killed mid-write")
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_only_when_complete(tmp_path):
    dest = tmp_path / "bundle"
    with atomic_path(dest, is_dir=True) as tmp:
        (tmp / "a").write_text("v1")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(dest, is_dir=True) as tmp:
            (tmp / "a").write_text("v2-partial")
            raise KeyboardInterrupt
    assert (dest / "a").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    with atomic_path(dest, is_dir=True) as tmp:
        (tmp / "b").write_text("v3")
    assert sorted(p.name for p in dest.iterdir()) == ["b"]
    assert oct(dest.stat().st_mode & 0o777) != oct(0o700)


def test_write_json_and_hash(tmp_path):
    p = write_json(tmp_path / "m.json", {"b": 1, "a": [1, 2]})
    assert p.read_text().startswith("{\n")
    assert len(sha256_file(p)) == 64


def test_registry_lists_known_names_on_miss():
    r: Registry[int] = Registry("widget")
    r.add("alpha", 1)
    r.add("beta", 2)
    with pytest.raises(EdgethError) as e:
        r.get("gamma")
    assert "alpha, beta" in e.value.message() and "gamma" in e.value.message()
    with pytest.raises(ValueError):
        r.add("alpha", 3)


def test_specs_round_trip_json():
    s = TensorSpec("frames", (2, 3, 64, 64), kind="image", dynamic={0: ("batch", 1, 8)})
    assert TensorSpec.from_json(s.to_json()) == s
    with pytest.raises(ValueError):
        TensorSpec("x", (1,), kind="nonsense")
    p = PipelineSpec(kind="k", programs=("a", "b"), sampler={"steps": 4})
    assert PipelineSpec.from_json(p.to_json()) == p


def _run_cli(args, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "edgeth", *args], capture_output=True, text=True, env=env)


def test_cli_error_is_one_line_exit_2_and_debug_shows_traceback():
    r = _run_cli(["models", "--json"])
    assert r.returncode == 0, r.stderr
    # an unknown subcommand option is a usage error (click), not a traceback
    r = _run_cli(["models", "--nope"])
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_edgeth_error_mapping_in_main(monkeypatch, capsys):
    import click

    from edgeth import cli as cli_mod

    @click.command("boom")
    def boom():
        """Example: edgeth boom"""
        raise InputError("clip.mp4 is not a video", "re-encode it with ffmpeg")

    monkeypatch.setattr(cli_mod.LazyGroup, "get_command", lambda self, ctx, name: boom)
    monkeypatch.delenv("EDGETH_DEBUG", raising=False)
    with pytest.raises(SystemExit) as e:
        cli_mod.main(["boom"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: clip.mp4 is not a video — re-encode it with ffmpeg"]
    monkeypatch.setenv("EDGETH_DEBUG", "1")
    with pytest.raises(InputError):
        cli_mod.main(["boom"])
