"""Traces from a real `mecha serve`: a signed webhook through an instant worker to a comment
on the GitHub emulator is one trace (delivery, match, task, send, policy, write), exported
over OTLP/HTTP to a receiver on 127.0.0.1, its trace id on the event's timeline. Without
the OTEL_* variables nothing of OpenTelemetry is imported (``PYTHONPROFILEIMPORTTIME``
lists every module the serve imports) and no trace id is kept."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mecha.testing.forge.api import ForgeEmulator
from mecha.testing.instant_worker import InstantWorker
from mecha.testing.serve_process import ServeProcess
from tests.e2e.dispatching import endpoint_worker
from tests.e2e.otlp import OtlpReceiver, ReceivedSpan
from tests.e2e.serving import make_home, mecha_cli, post_github, pr_payload
from tests.e2e.writing import BASE, FAST_WRITES, GITHUB_TOKEN, HEAD, writes_settled

POLICY = "policy:\n  comment: {allow: true}\n  labels: {allow: true, allowed: [bug]}\n"
RESULT = {"output": "fine", "comment": {"body": "looks fine"}, "labels": {"add": ["bug"]}}
STEPS = ("mecha.delivery", "mecha.match", "mecha.task", "mecha.send", "mecha.policy")
#: what PYTHONPROFILEIMPORTTIME writes for a module of OpenTelemetry
OTEL_IMPORT = re.compile(r"^import time: .*\| +opentelemetry", re.MULTILINE)


def _through(tmp_path: Path, env: dict[str, str]) -> tuple[Path, dict[str, Any], str]:
    """A webhook through a real serve to its two writes; its home, the event, the log."""
    with ForgeEmulator(github_token=GITHUB_TOKEN) as forge, InstantWorker() as worker:
        home = make_home(tmp_path, config=FAST_WRITES, github_token=GITHUB_TOKEN)
        forge.add_pull("octo", "app", 7, base_sha=BASE, head_sha=HEAD)
        worker.set(result=RESULT)
        endpoint_worker(home, "reviewer", worker.url, extra=POLICY)
        environ = {"GITHUB_API_URL": forge.github_url, "PYTHONPROFILEIMPORTTIME": "1", **env}
        with ServeProcess(home, env=environ) as server:
            answer = post_github(server.url, pr_payload())
            assert answer.status_code == 202, answer.text
            shown = writes_settled(server.url, answer.json()["id"], count=2)
    assert sorted(w["state"] for w in shown["writes"]) == ["done", "done"], shown
    return home, shown, server.log()


def test_a_webhook_to_its_writes_is_one_trace_named_on_the_timeline(tmp_path: Path) -> None:
    with OtlpReceiver() as otlp:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url, "OTEL_BSP_SCHEDULE_DELAY": "50"}
        home, shown, log = _through(tmp_path, env)
        # the serve has stopped: its last spans were exported as it did
        spans = {name: otlp.named(name) for name in (*STEPS, "mecha.write")}
    assert OTEL_IMPORT.search(log)  # the way the test below sees imports sees these
    assert {name: len(found) for name, found in spans.items()} == {
        "mecha.delivery": 1, "mecha.match": 2, "mecha.task": 1, "mecha.send": 1,
        "mecha.policy": 1, "mecha.write": 2,
    }, otlp.spans  # fmt: skip
    one = {name: found[0] for name, found in spans.items()}
    delivery, task = one["mecha.delivery"], one["mecha.task"]
    trace = delivery.trace_id
    assert {span.trace_id for span in otlp.spans} == {trace}  # one trace, nothing else
    # nested: the match and the task (a later step) under the delivery, the rest under it
    assert delivery.parent_id == ""
    # matched twice: on storing, it waits for its diff (a token is set); then with it
    assert [m.parent_id for m in spans["mecha.match"]] == [delivery.span_id] * 2
    assert task.parent_id == delivery.span_id
    for step in ("mecha.send", "mecha.policy"):
        assert one[step].parent_id == task.span_id, one[step]
        assert task.start <= one[step].start <= one[step].end <= task.end
    assert [w.parent_id for w in spans["mecha.write"]] == [task.span_id, task.span_id]
    # what each is about
    event_id, task_id = shown["id"], shown["tasks"][0]["id"]
    assert _about(delivery) == {
        "mecha.source": "github", "mecha.event.id": event_id,
        "mecha.delivery_id": shown["delivery_id"], "http.response.status_code": 202,
    }  # fmt: skip
    assert sorted(
        (m.attrs["mecha.event.id"], m.attrs["mecha.event.state"]) for m in spans["mecha.match"]
    ) == [(event_id, "matched"), (event_id, "received")]
    assert task.attrs == {"mecha.task.id": task_id, "mecha.worker": "reviewer",
                          "mecha.event.id": event_id, "mecha.task.retry": False}  # fmt: skip
    assert one["mecha.send"].attrs == {"mecha.task.attempt": 1}
    assert one["mecha.policy"].attrs == {
        "mecha.policy.writes": 2,
        "mecha.policy.denied": 0,
        "mecha.policy.dry_run": False,
    }
    assert sorted(w.attrs["mecha.write.action"] for w in spans["mecha.write"]) == [
        "comment",
        "labels",
    ]
    assert {w.attrs["mecha.task.id"] for w in spans["mecha.write"]} == {task_id}
    assert not any(span.error for span in otlp.spans)
    # the trace id on the timeline: the API's, and `mecha event show`'s
    received = shown["timeline"][0]
    assert (received["step"], received["detail"]) == (
        "received",
        f"github pull_request.opened from mona; trace {trace}",
    )
    assert f"trace {trace}" in mecha_cli(home, "event", "show", event_id).stdout


def test_without_otel_settings_nothing_is_traced_or_imported(tmp_path: Path) -> None:
    _, shown, log = _through(tmp_path, {})
    assert not OTEL_IMPORT.search(log), [x for x in log.splitlines() if "opentelemetry" in x]
    assert "import time:" in log  # the imports were listed
    assert shown["timeline"][0]["detail"] == "github pull_request.opened from mona"
    assert "traceparent" not in shown["attrs"]
    assert "traceparent" not in shown["tasks"][0]["context"]


def _about(span: ReceivedSpan) -> dict[str, Any]:
    return span.attrs
