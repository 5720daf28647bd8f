"""`mecha event send` as a newcomer uses it: the shipped samples, a hand-made payload that
lacks what write-back needs, and the mistakes one makes on the way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mecha import samples
from mecha.testing.instant_worker import InstantWorker
from mecha.testing.serve_process import ServeProcess
from tests.e2e.dispatching import FAST, endpoint_worker
from tests.e2e.serving import GITLAB_SIGNING, make_home, mecha_cli
from tests.e2e.writing import details, writes_settled

#: what a newcomer writes by hand after reading the README: no `repository`
HAND_MADE = {"action": "opened", "number": 1, "pull_request": {"title": "Fix the thing"}}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    home = make_home(tmp_path_factory.mktemp("send"))
    with ServeProcess(home) as server:
        yield home, server.url.removeprefix("http://")


def stored(addr: str, sent: str) -> dict[str, object]:
    """The event whose id `mecha event send` printed."""
    event_id = json.loads(sent.splitlines()[0].split(" ", 1)[1])["id"]
    found: dict[str, object] = httpx.get(f"http://{addr}/event/{event_id}", timeout=10).json()
    return found


def test_the_readme_sample_is_stored_as_its_event_type(served: tuple[Path, str]) -> None:
    home, addr = served
    sent = mecha_cli(home, "event", "send", "--sample", "pull_request.opened", "--addr", addr)
    assert sent.returncode == 0, sent.stderr
    assert sent.stderr == ""  # a shipped sample lacks nothing write-back needs
    assert sent.stdout.startswith("202 ")
    assert "mecha event show " in sent.stdout
    event = stored(addr, sent.stdout)
    assert (event["source"], event["type"], event["subject"]) == (
        "github", "pull_request.opened", "Codertocat/Hello-World"
    )  # fmt: skip
    assert event["raw"] == samples.load("github", "pull_request.opened").body.decode()


def test_a_sample_can_be_sent_again_as_a_new_delivery(served: tuple[Path, str]) -> None:
    home, addr = served
    first, again = (
        mecha_cli(home, "event", "send", "--sample", "issues.opened", "--addr", addr)
        for _ in range(2)
    )
    assert [first.stdout[:4], again.stdout[:4]] == ["202 ", "202 "], again.stdout
    assert stored(addr, first.stdout)["id"] != stored(addr, again.stdout)["id"]


def test_source_gitlab_chooses_gitlabs_sample(served: tuple[Path, str]) -> None:
    home, addr = served
    sent = mecha_cli(
        home, "event", "send", "--sample", "push", "--source", "gitlab", "--addr", addr
    )
    assert sent.returncode == 0, sent.stderr
    event = stored(addr, sent.stdout)
    assert (event["source"], event["type"], event["subject"]) == ("gitlab", "push", "mike/diaspora")


def test_a_gitlab_only_sample_needs_no_source(served: tuple[Path, str]) -> None:
    home, addr = served
    sent = mecha_cli(home, "event", "send", "--sample", "merge_request.open", "--addr", addr)
    assert sent.returncode == 0, sent.stderr
    event = stored(addr, sent.stdout)
    assert (event["source"], event["type"]) == ("gitlab", "merge_request.open")


def test_gitlab_with_only_a_signing_token_is_signed_the_standard_webhooks_way(
    tmp_path: Path,
) -> None:
    home = make_home(tmp_path)
    secrets = home / "secrets.yml"
    secrets.write_text(f"gitlab:\n  signing_token: {GITLAB_SIGNING}\n")
    with ServeProcess(home) as server:
        addr = server.url.removeprefix("http://")
        sent = mecha_cli(home, "event", "send", "--sample", "note", "--addr", addr)
        assert sent.returncode == 0, sent.stderr
        event = stored(addr, sent.stdout)
    assert (event["source"], event["type"]) == ("gitlab", "note")
    headers = event["headers"]
    assert isinstance(headers, dict) and headers["webhook-signature"].startswith("v1,")


def test_an_unknown_sample_names_the_samples_there_are(tmp_path: Path) -> None:
    sent = mecha_cli(make_home(tmp_path), "event", "send", "--sample", "pull_request.open")
    assert sent.returncode == 2
    assert 'there is no sample "pull_request.open"' in sent.stderr
    for forge in samples.FORGES:
        assert ", ".join(samples.names(forge)) in sent.stderr
    assert "Traceback" not in sent.stderr


def test_a_file_without_event_says_what_to_pass(tmp_path: Path) -> None:
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps(HAND_MADE))
    sent = mecha_cli(make_home(tmp_path), "event", "send", str(payload))
    assert sent.returncode == 2
    assert "--event is needed" in sent.stderr and "--sample pull_request.opened" in sent.stderr


def test_event_samples_lists_every_shipped_sample(tmp_path: Path) -> None:
    listed = mecha_cli(make_home(tmp_path), "event", "samples")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split()[:2] for line in listed.stdout.splitlines()[1:] if line.strip()]
    shipped = [[forge, name] for forge in samples.FORGES for name in samples.names(forge)]
    assert rows[: len(shipped)] == shipped
    assert "Codertocat/Hello-World#2: Update the README with new information." in listed.stdout


def test_a_payload_without_a_repository_is_named_at_send_and_on_the_timeline(
    tmp_path: Path,
) -> None:
    """The newcomer's first hour: the warning and the timeline both name the missing field."""
    home = make_home(tmp_path, config=FAST)
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps(HAND_MADE))
    with InstantWorker() as worker:
        worker.set(result={"comment": {"body": "Looks fine."}})
        endpoint_worker(home, "reviewer", worker.url)
        with ServeProcess(home) as server:
            addr = server.url.removeprefix("http://")
            sent = mecha_cli(home, "event", "send", str(payload), "--event", "pull_request",
                             "--addr", addr)  # fmt: skip
            assert sent.returncode == 0, sent.stderr
            event_id = str(stored(addr, sent.stdout)["id"])
            shown = writes_settled(server.url, event_id, count=0)
    assert (
        f"warning: {payload} has no repository.full_name: Mecha needs it to write back anything"
        in sent.stderr
    )
    assert details(shown, "policy")[1:] == [
        "skipped: comment: the payload has no repository.full_name, so there is no repository "
        "to write to",
    ]
