"""The lowering cache (edgeth.targets.lowering_cache): keyed by the graph it lowers, shared on disk,
and a bundle exported through it is byte for byte the bundle exported without it."""
from __future__ import annotations

import copy
import json

import pytest

import bundle_support as bs


def _exported(module, shape=(1, 3, 8, 8)):
    import torch

    return torch.export.export(module.eval(), (torch.randn(*shape),))


def _net(seed: int = 0):
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU())


def test_graph_key_follows_the_graph_its_weights_its_shapes_and_the_recipe():
    import torch

    from edgeth.targets.lowering_cache import graph_key

    net = _net()
    key = graph_key(_exported(net), "r")
    assert key == graph_key(_exported(copy.deepcopy(net)), "r")  # another export of equal content
    assert key != graph_key(_exported(net), "other recipe")
    assert key != graph_key(_exported(net, (1, 3, 8, 9)), "r")  # same code, another input shape
    changed = copy.deepcopy(net)
    with torch.no_grad():
        changed[0].weight[0, 0, 0, 0] += 1e-3  # one weight element
    assert key != graph_key(_exported(changed), "r")
    other_op = torch.nn.Sequential(net[0], torch.nn.Sigmoid())
    assert key != graph_key(_exported(other_op), "r")


def test_cached_builds_once_per_key_rebuilds_a_damaged_entry_and_keeps_no_failed_one(tmp_path):
    from edgeth.targets.lowering_cache import cached, using

    built = []

    def build(data=b"lowered"):
        built.append(data)
        return {"program.pte": data, "sub/x.bin": b"\0" * 3}, {"delegated": 3}

    assert cached("k", "abc", build)[0]["program.pte"] == b"lowered" and len(built) == 1  # no cache: builds
    with using(tmp_path / "c"):
        first = cached("k", "abc", build)
        again = cached("k", "abc", lambda: pytest.fail("a stored entry was built again"))
        assert again == first and first[1] == {"delegated": 3} and len(built) == 2
        (tmp_path / "c" / "lowered" / "k" / "abc" / "files" / "program.pte").write_bytes(b"bitrot")
        assert cached("k", "abc", build)[0]["program.pte"] == b"lowered" and len(built) == 3  # damaged: rebuilt

        def broken():
            raise RuntimeError("converter crashed")

        with pytest.raises(RuntimeError):
            cached("k", "def", broken)
        assert not (tmp_path / "c" / "lowered" / "k" / "def").exists()
        assert not [p for p in (tmp_path / "c" / "lowered" / "k").iterdir() if p.name.endswith(".tmp")]
        assert cached("k", "def", build)[0]["sub/x.bin"] == b"\0" * 3


def test_an_unusable_cache_folder_is_a_clean_error(tmp_path):
    from edgeth.errors import InputError
    from edgeth.targets.lowering_cache import cached, using

    (tmp_path / "file").write_text("not a folder")
    with using(tmp_path / "file"), pytest.raises(InputError, match="cannot use the export cache"):
        cached("k", "abc", lambda: pytest.fail("built without its cache"))


def test_folder_artifacts_keep_their_empty_folders(tmp_path):
    """An .mlpackage of a program without weights lists an empty weights/ folder in its manifest
    (VQTalker's quantizer): it must come back from the cache, or the package does not load."""
    from edgeth.targets.lowering_cache import cached, read_tree, using, write_tree

    pkg = tmp_path / "a.mlpackage"
    (pkg / "Data" / "weights").mkdir(parents=True)
    (pkg / "Manifest.json").write_text("{}")
    with using(tmp_path / "c"):
        cached("coreml", "k", lambda: (read_tree(pkg), {}))
        files, _ = cached("coreml", "k", lambda: pytest.fail("built again"))
    write_tree(tmp_path / "b.mlpackage", files)
    assert (tmp_path / "b.mlpackage" / "Data" / "weights").is_dir()
    assert read_tree(tmp_path / "b.mlpackage") == read_tree(pkg)


@pytest.mark.parametrize("precision", ["int8"])
def test_a_bundle_exported_through_the_cache_is_the_bundle_exported_without_it(tmp_path, precision):
    """Without the cache, with it (every lowering a miss), again (every lowering a hit): the same files."""
    from edgeth.bundle.export import export_bundle
    from edgeth.targets.lowering_cache import STATS

    targets = [t for t in ("executorch", "coreml", "onnx") if t in bs.exportable_targets()]
    if not {"executorch", "coreml"} & set(targets):
        pytest.skip("neither ExecuTorch nor Core ML exports here")
    image, audio = bs.sample_media()
    run = bs.make_run(tmp_path / "run")
    files = {}
    with bs.registered():
        for name, cache in (("plain", None), ("miss", tmp_path / "cache"), ("hit", tmp_path / "cache")):
            before = dict(STATS)
            res = export_bundle(run, tmp_path / name, targets=targets, precision=precision, image=image, audio=audio,
                                progress=False, cache=cache, quantize={"cache_dir": tmp_path / "calib", "calib_clips": 1})
            delta = {k: v - before.get(k, 0) for k, v in STATS.items() if v != before.get(k, 0)}
            files[name] = {k: v for k, v in res.manifest["files"].items() if not k.startswith("reference/")}
            if name == "plain":
                assert not delta, delta
            elif name == "miss":
                assert delta and all(k.endswith(".miss") for k in delta), delta
                assert {k.split(".")[0] for k in delta} == set(targets), delta  # every target's conversion went through it
            else:
                assert delta and all(k.endswith(".hit") for k in delta), delta
    assert any(k.endswith(".pte") for k in files["plain"]), sorted(files["plain"])
    for name in ("miss", "hit"):
        differ = sorted(k for k in set(files["plain"]) | set(files[name]) if files["plain"].get(k) != files[name].get(k))
        assert not differ, f"{name}: files that differ from the export without the cache: {differ}"
    manifest = json.loads((tmp_path / "hit" / "manifest.json").read_text())
    assert all(p["artifacts"][t]["precision"] == precision for p in manifest["programs"] for t in targets)
