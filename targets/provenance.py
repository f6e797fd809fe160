"""FX provenance without the quadratic copy: `shared_provenance()` around edgeth's exports.

Every FX pass that replays a graph (torch.export's decompositions, ExecuTorch's edge and
XNNPACK passes, PT2E, the ONNX exporter) records, for each node it creates, where the node came
from: `node.meta["from_node"]`, a list of `torch.fx.traceback.NodeSource` records, each holding
the records of its own source. torch 2.13's `NodeSource.__init__` deep-copies that whole history
every time, so the cost of a pass grows with the number of passes before it: a 5-program IF-MDM
INT8 lowering spent ~30 of its ~160 profiled seconds in `copy.deepcopy` of provenance.

The records are never edited after they are made (every reader only walks them; the one writer,
`graph_transform_observer`, appends to a node's own list), so inside the block a new record takes
a copy of the source's *list* and shares the records in it: the same history, the same
`to_dict()`, the same debug handles and the same `.pte` bytes (tests/test_provenance.py). This is
the change proposed upstream in pytorch/pytorch#193051; until a torch edgeth supports ships it,
edgeth applies it only while it exports, and only to the `NodeSource.__init__` it was checked
against (any other torch: the block changes nothing). Not thread-safe across concurrent exports
in one process with other FX users; edgeth exports run one at a time.
"""
from __future__ import annotations

import contextlib
import inspect
from typing import Any, Iterator

_DEEP_COPY_LINE = 'copy.deepcopy(node.meta["from_node"])'
_state: dict[str, Any] = {"depth": 0, "original": None, "checked": None}


def _applicable(init: Any) -> bool:
    """True for the NodeSource.__init__ this was written against (deep copy of from_node,
    signature (self, node, pass_name, action))."""
    if _state["checked"] is None:
        try:
            params = list(inspect.signature(init).parameters)
            _state["checked"] = params == ["self", "node", "pass_name", "action"] and _DEEP_COPY_LINE in inspect.getsource(init)
        except (TypeError, OSError):
            _state["checked"] = False
    return bool(_state["checked"])


def _sharing_init(original: Any) -> Any:
    def __init__(self, node, pass_name: str = "", action=None) -> None:
        meta = getattr(node, "meta", None) if node else None
        if not meta or "from_node" not in meta:
            return original(self, node, pass_name, action)
        records = meta["from_node"]
        meta["from_node"] = []  # the original then copies an empty history (key order kept)
        try:
            original(self, node, pass_name, action)
        finally:
            meta["from_node"] = records
        self.from_node = list(records)  # a snapshot of the list; the records themselves shared

    __init__.__wrapped__ = original  # type: ignore[attr-defined]
    return __init__


@contextlib.contextmanager
def shared_provenance() -> Iterator[bool]:
    """Inside the block FX shares provenance records instead of deep-copying them (see the module
    doc). Re-entrant; yields whether the sharing is in force."""
    from torch.fx import traceback as fx_traceback

    cls = fx_traceback.NodeSource
    if _state["depth"] == 0:
        if not _applicable(cls.__init__):
            yield False
            return
        _state["original"] = cls.__init__
        cls.__init__ = _sharing_init(cls.__init__)
    _state["depth"] += 1
    try:
        yield True
    finally:
        _state["depth"] -= 1
        if _state["depth"] == 0:
            cls.__init__ = _state["original"]
            _state["original"] = None
