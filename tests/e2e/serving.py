"""Shared set-up for tests against a real `mecha serve`: a home folder, secrets, workers."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from mecha.forges.signing import github_headers

GITHUB_SECRET = "gh-webhook-secret-one"
GITHUB_SECRET_NEXT = "gh-webhook-secret-two"
GITLAB_TOKEN = "gl-webhook-token"
GITLAB_SIGNING = "whsec_" + "c2lnbmluZy1rZXktZm9yLXRlc3Rz"  # base64 of "signing-key-for-tests"
SOURCE_SECRET = "generic-source-secret"


def make_home(
    root: Path, *, config: str = "", github_token: str = "", extra_secrets: str = "",
    gitlab_token: str = "", gitlab_url: str = "",
) -> Path:  # fmt: skip
    """A MECHA_HOME with secrets.yml (0600) for every source, and config.yml."""
    home = root / "mecha-home"
    home.mkdir(mode=0o700, exist_ok=True)
    secrets = (
        "github:\n"
        f"  webhook_secret: [{GITHUB_SECRET}, {GITHUB_SECRET_NEXT}]\n"
        + (f"  token: {github_token}\n" if github_token else "")
        + f"gitlab:\n  webhook_secret: {GITLAB_TOKEN}\n  signing_token: {GITLAB_SIGNING}\n"
        + (f"  token: {gitlab_token}\n" if gitlab_token else "")
        + (f"  url: {gitlab_url}\n" if gitlab_url else "")
        + f"sources:\n  alerts:\n    secret: {SOURCE_SECRET}\n"
        + extra_secrets
    )
    path = home / "secrets.yml"
    path.write_text(secrets, encoding="utf-8")
    path.chmod(0o600)
    (home / "config.yml").write_text(config, encoding="utf-8")
    return home


def mecha_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI against ``home`` in a child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MECHA_")}
    env["MECHA_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "mecha", *args], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


def add_worker(home: Path, name: str, rules: str) -> None:
    """Register an unmanaged worker with the given `events:` YAML block."""
    path = home / f"{name}.yml"
    path.write_text(f"name: {name}\nendpoint: http://127.0.0.1:9\nevents:\n{rules}")
    done = mecha_cli(home, "worker", "add", str(path))
    assert done.returncode == 0, done.stderr


def pr_payload(*, number: int = 7, labels: tuple[str, ...] = ("bug",), padding: int = 0) -> bytes:
    """A GitHub pull_request.opened payload (shape as GitHub sends it)."""
    repo = {"full_name": "octo/app", "name": "app", "owner": {"login": "octo"}}
    payload: dict[str, Any] = {
        "action": "opened",
        "number": number,
        "pull_request": {
            "number": number, "title": "Fix the thing", "body": "x" * padding, "draft": False,
            "author_association": "CONTRIBUTOR",
            "labels": [{"name": n} for n in labels],
            "head": {"sha": "a" * 40, "ref": "fix", "repo": repo},
            "base": {"sha": "b" * 40, "ref": "main", "repo": repo},
        },
        "repository": repo,
        "sender": {"login": "mona"},
        "installation": {"id": 99},
    }  # fmt: skip
    return json.dumps(payload).encode()


def post_github(
    url: str, body: bytes, *, event: str = "pull_request", delivery: str | None = None,
    secret: str = GITHUB_SECRET, **override: str,
) -> httpx.Response:  # fmt: skip
    """POST a signed GitHub delivery; ``override`` replaces or (with "") drops headers."""
    headers = github_headers(
        body, secret=secret, event=event, delivery_id=delivery or str(uuid.uuid4())
    )
    for name, value in override.items():
        header = name.replace("_", "-")
        headers = {k: v for k, v in headers.items() if k.lower() != header.lower()}
        if value:
            headers[header] = value
    return httpx.post(f"{url}/webhook/github", content=body, headers=headers, timeout=30)


def count_events(home: Path) -> int:
    """Events in the database, read straight from the file."""
    with sqlite3.connect(home / "mecha.db") as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def settled(url: str, event_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """The event once matching has run (its state left `received`)."""
    deadline = time.monotonic() + timeout
    while True:
        shown: dict[str, Any] = httpx.get(f"{url}/event/{event_id}").json()
        if shown["state"] != "received" or time.monotonic() > deadline:
            return shown
        time.sleep(0.05)


def send_event(
    home: Path, payload: Path, *, source: str, event: str, url: str
) -> subprocess.CompletedProcess[str]:
    """`mecha event send` of ``payload`` to the server at ``url``."""
    addr = url.removeprefix("http://")
    return mecha_cli(
        home, "event", "send", str(payload), "--source", source, "--event", event, "--addr", addr
    )
