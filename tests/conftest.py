"""Shared pytest fixtures (each block belongs to one area; edit surgically)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# make test runs one pytest-xdist worker per core, and each worker's torch uses OpenMP threads of
# its own. With libgomp's default (spinning) wait policy, two workers' thread teams on two cores
# burn each other's time: the tiny IF-MDM and VQTalker fixtures trained side by side took 302 s
# and 288 s (54 s and 35 s alone); with PASSIVE waits 90 s and 64 s. libgomp reads this when torch
# loads it, so it is set before anything here imports torch (subprocesses inherit it).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Helper modules that live in tests/ (e.g. bundle_support) are importable by name.
sys.path.insert(0, str(Path(__file__).resolve().parent))


# -- bundles (edgeth.bundle / runtime_py): the small `bundlefix` family, exported once ----
@pytest.fixture(scope="session")
def fixture_bundle(tmp_path_factory) -> dict:
    """{"run", "bundle", "tar", "root"}: the tests' fixture family exported for every target available here."""
    import bundle_support

    return bundle_support.build_bundle(tmp_path_factory.mktemp("bundlefix"))


# -- data (edgeth.data): one small synthetic corpus per session --------------------------
@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory) -> Path:
    """8 clips x 4 s at 64 px, lossless frames too; ids split 3 train / 1 val."""
    from shared_once import shared_dir

    def build(out: Path) -> None:
        from edgeth.data.synth import generate_corpus

        generate_corpus(out / "synth", clips=8, seconds=4.0, size=64, seed=0, lossless=True, progress=False)

    return shared_dir(tmp_path_factory, "corpus", build) / "synth"


# -- model families: each family's tiny fixture run (ModelFamily.fixture_run), once per session --
@pytest.fixture(scope="session")
def family_run(synth_corpus, tmp_path_factory):
    """family_run(name) -> RUN/ of that family's tiny fixture, trained once per session on synth_corpus.

    EDGETH_FIXTURE_CACHE=DIR (developer machines only; CI never sets it) keeps the runs in DIR,
    keyed by a hash of the family's source, so repeated local test runs skip the training."""
    import fixture_cache

    runs: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in runs:
            runs[name] = fixture_cache.fixture_run(name, synth_corpus, tmp_path_factory)
        return runs[name]

    return get


# -- IF-MDM (models/ifmdm): the tiny model trained briefly on synth_corpus, reused by export tests --
@pytest.fixture(scope="session")
def ifmdm_tiny_run(family_run) -> Path:
    """RUN/ of a tiny IF-MDM trained ~90 s on CPU (both stages); load with get_model("ifmdm").load(run)."""
    return family_run("ifmdm")


# -- VQTalker (models/vqtalker): the tiny fixture run, shared with the conformance suite --
@pytest.fixture(scope="session")
def vqtalker_tiny_run(family_run) -> Path:
    """RUN/ of a tiny VQTalker (tokenizer + speech k-means + generator, briefly trained on CPU)."""
    return family_run("vqtalker")


# -- MDCF (models/mdcf): the tiny model trained briefly on synth_corpus (all three phases) --
@pytest.fixture(scope="session")
def mdcf_tiny_run(family_run) -> Path:
    """RUN/ of a tiny MDCF (FDE 200 + LMAE 150 + diffusion 200 steps, ~1 min of CPU)."""
    return family_run("mdcf")


# -- pytest-xdist (make test runs on every core): which tests share a worker ------------------
@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Schedule by work_unit (xdist's own `--dist loadgroup` renames node ids, which pytest 9.2's
    read-only node ids ignore: its groups were silently split)."""
    from xdist.scheduler import LoadScopeScheduling

    from xdist_units import work_unit

    class ByWorkUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False  # the order pytest_collection_modifyitems leaves
    return ByWorkUnit(config, log)


def pytest_collection_modifyitems(config, items):
    """Long units first (tests/xdist_units.py dispatch_rank), so the run does not end on one."""
    from xdist_units import dispatch_rank

    items.sort(key=lambda item: dispatch_rank(item.nodeid))  # stable: collection order within a rank
