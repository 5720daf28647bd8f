"""The forge emulator's test hooks: telling clients apart (``github_url_for``) and holding
an answer after the write was made (``hold``)."""

from __future__ import annotations

import contextlib
import threading

import httpx
import pytest

from mecha.testing.forge.api import ForgeEmulator

TOKEN = "ghp_" + "H" * 36
AUTH = {"Authorization": f"Bearer {TOKEN}"}
COMMENTS = "/repos/octo/hello/issues/7/comments"


def test_requests_through_a_callers_url_are_recorded_with_its_name() -> None:
    with ForgeEmulator(github_token=TOKEN) as forge:
        forge.add_pull("octo", "hello", 7, base_sha="1" * 40, head_sha="2" * 40)
        mine = httpx.post(
            forge.github_url_for("node-a") + COMMENTS, json={"body": "hi"}, headers=AUTH
        )
        plain = httpx.get(forge.github_url + COMMENTS, headers=AUTH)
        [first, second] = forge.requests
        mine_url = forge.github_url_for("node-a")
    assert mine.status_code == 201, mine.text
    # the path is the forge's own, with or without a caller; links keep the caller's URL
    assert (first.caller, first.path) == ("node-a", "/github" + COMMENTS)
    assert (second.caller, second.path) == ("", "/github" + COMMENTS)
    assert mine.json()["url"].startswith(mine_url + "/repos/octo/hello/")
    assert [c["body"] for c in plain.json()] == ["hi"]
    with ForgeEmulator() as forge, pytest.raises(ValueError, match="a caller's name"):
        forge.github_url_for("a/b")


def test_a_held_write_is_made_at_once_and_answered_when_released() -> None:
    with ForgeEmulator(github_token=TOKEN) as forge:
        forge.add_pull("octo", "hello", 7, base_sha="1" * 40, head_sha="2" * 40)
        release = forge.hold(COMMENTS + "$", method="POST")
        answers: list[httpx.Response] = []
        client = threading.Thread(
            target=lambda: answers.append(
                httpx.post(forge.github_url + COMMENTS, json={"body": "held"}, headers=AUTH)
            )
        )
        client.start()
        while not forge.github.writes.comments("octo", "hello", 7):
            client.join(0.02)
        # made, and a GET is answered meanwhile, but the POST's answer is still held
        listed = httpx.get(forge.github_url + COMMENTS, headers=AUTH).json()
        assert [c["body"] for c in listed] == ["held"]
        client.join(0.3)
        assert client.is_alive() and not answers
        release.set()
        client.join(10)
        # only the first matching request is held (times=1)
        again = httpx.post(forge.github_url + COMMENTS, json={"body": "free"}, headers=AUTH)
    assert [a.status_code for a in answers] == [201] and again.status_code == 201


def test_closing_the_emulator_lets_a_held_answer_go() -> None:
    forge = ForgeEmulator(github_token=TOKEN)
    forge.start()
    forge.add_pull("octo", "hello", 7, base_sha="1" * 40, head_sha="2" * 40)
    forge.hold(COMMENTS + "$", method="POST", times=None)

    def post() -> None:
        # the server may go before the answer is read
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(forge.github_url + COMMENTS, json={"body": "x"}, headers=AUTH, timeout=30)

    client = threading.Thread(target=post)
    client.start()
    while not forge.requests:
        client.join(0.02)
    forge.close()  # returns: the held handler thread was woken and joined
    client.join(10)
    assert not client.is_alive()
