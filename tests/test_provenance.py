"""targets/provenance.py: FX provenance shared, not deep-copied, while edgeth exports — same history, same .pte."""
from __future__ import annotations

import pytest

from edgeth.targets import get_target
from fixture_programs import fixture_programs


def _history(ns) -> tuple:
    """A NodeSource's history without graph ids (ids of graph objects differ between two runs)."""
    return (ns.name, ns.target, ns.pass_name, tuple(a.name for a in ns.action), tuple(_history(s) for s in ns.from_node))


def _lowered(program):
    from edgeth.targets.executorch.exporter import lower
    from edgeth.targets.preflight import export_program

    edge = lower(export_program(program))
    gm = edge.exported_program().graph_module
    histories = [(n.name, tuple(_history(s) for s in n.meta.get("from_node", []))) for n in gm.graph.nodes]
    return bytes(edge.to_executorch().buffer), histories


def test_the_sharing_is_in_force_only_inside_the_block_and_nests():
    from torch.fx.traceback import NodeSource

    from edgeth.targets.provenance import shared_provenance

    before = NodeSource.__init__
    with shared_provenance() as on:
        assert on, "torch's NodeSource is not the one edgeth checked: the sharing never applies"
        patched = NodeSource.__init__
        assert patched is not before
        with shared_provenance() as inner:
            assert inner and NodeSource.__init__ is patched
        assert NodeSource.__init__ is patched  # the inner block does not undo the outer
    assert NodeSource.__init__ is before


def test_a_record_shares_its_sources_history_and_snapshots_the_list():
    import torch
    from torch.fx.traceback import NodeSource, NodeSourceAction

    from edgeth.targets.provenance import shared_provenance

    gm = torch.fx.symbolic_trace(torch.nn.Linear(2, 2))
    node = next(n for n in gm.graph.nodes if n.op == "call_function" or n.op == "call_module")
    root = NodeSource(node, "first", NodeSourceAction.CREATE)
    node.meta["from_node"] = [root]
    with shared_provenance():
        rec = NodeSource(node, "second", NodeSourceAction.CREATE)
    assert rec.from_node == [root] and rec.from_node[0] is root  # shared, not copied
    assert rec.from_node is not node.meta["from_node"]
    node.meta["from_node"].append(NodeSource(node, "third", NodeSourceAction.REPLACE))
    assert len(rec.from_node) == 1  # a later append to the node's list is not seen
    assert node.meta["from_node"][0] is root  # the node's own history is left as it was
    plain = NodeSource(node, "second", NodeSourceAction.CREATE)
    assert plain.from_node[0] is not root and plain.to_dict()["from_node"][0] == rec.to_dict()["from_node"][0]


@pytest.mark.skipif(not get_target("executorch").available().ok, reason="ExecuTorch is not installed")
def test_a_lowering_with_shared_provenance_is_the_lowering_without_it():
    """The same .pte bytes (debug handles come from the provenance) and the same history per node."""
    from edgeth.targets.provenance import shared_provenance

    for program in fixture_programs():
        plain = _lowered(program)
        with shared_provenance() as on:
            assert on
            shared = _lowered(program)
        assert shared[0] == plain[0], f"{program.name}: the .pte differs with shared provenance"
        assert shared[1] == plain[1], f"{program.name}: a node's provenance differs"
