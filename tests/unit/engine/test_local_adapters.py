"""An adapter worker is node-local: each node sends to the adapter it runs itself, whatever
another node last recorded for the worker in a shared database."""

from __future__ import annotations

from mecha.engine.registry import LoadedWorker
from mecha.engine.targets import LocalWorker, build_targets
from mecha.store import WorkerRecord
from mecha.worker.kind import WorkerKind, WorkerState
from tests.unit.engine.fakes import definition, loaded


def adapter_worker(name: str) -> LoadedWorker:
    written = definition(name)
    del written["endpoint"]
    written["adapter"] = {"type": "openai", "upstream": "http://127.0.0.1:9/v1", "model": "m"}
    return loaded(written)


def record(name: str, kind: WorkerKind, state: WorkerState, endpoint: str) -> WorkerRecord:
    return WorkerRecord(name=name, kind=kind, state=state, endpoint=endpoint, definition={})


def test_an_adapter_is_sent_to_where_it_runs_on_this_node() -> None:
    workers = [adapter_worker("a"), loaded(definition("u"))]
    # another node recorded its own adapter's port last; this node's runs elsewhere
    records = [
        record("a", WorkerKind.ADAPTER, WorkerState.ONLINE, "http://127.0.0.1:4001/"),
        record("u", WorkerKind.UNMANAGED, WorkerState.ONLINE, ""),
    ]
    here = {"a": LocalWorker(WorkerState.ONLINE, "http://127.0.0.1:5002/")}
    targets = build_targets(workers, records, keys={"a": "k"}, local=here)
    assert targets["a"].endpoint == "http://127.0.0.1:5002/" and targets["a"].waiting == ""
    assert targets["u"].endpoint == "http://127.0.0.1:9/"  # not node-local: as defined
    # the other node stopped and recorded it offline: this node still sends to its own
    records[0] = record("a", WorkerKind.ADAPTER, WorkerState.OFFLINE, "")
    again = build_targets(workers, records, keys={"a": "k"}, local=here)
    assert again["a"].endpoint == "http://127.0.0.1:5002/" and again["a"].waiting == ""


def test_an_adapter_not_running_on_this_node_waits_here() -> None:
    workers = [adapter_worker("a")]
    records = [record("a", WorkerKind.ADAPTER, WorkerState.ONLINE, "http://127.0.0.1:4001/")]
    targets = build_targets(workers, records, keys={}, local={})
    assert targets["a"].state is WorkerState.OFFLINE and targets["a"].endpoint == ""
    assert "adapter is not running" in targets["a"].waiting
    broken = {"a": LocalWorker(WorkerState.ERROR, "http://127.0.0.1:5002/", "model away")}
    in_error = build_targets(workers, records, keys={}, local=broken)["a"]
    assert "model away" in in_error.waiting
