"""`mecha serve` refusing to start, with reasons (bad config, weak key, taken port), and a
public address without a key: webhooks open, API closed."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from mecha.testing.serve_process import ServeProcess
from tests.e2e.serving import count_events, make_home, mecha_cli, post_github, pr_payload

API_ROUTES = [("GET", "/events"), ("GET", "/event/1"), ("GET", "/tasks"), ("GET", "/task/1"),
              ("GET", "/workers"), ("GET", "/metrics"), ("POST", "/task")]  # fmt: skip


def test_a_public_address_without_an_api_key_serves_webhooks_and_closes_the_api(
    tmp_path: Path,
) -> None:
    home = make_home(tmp_path)
    with ServeProcess(home, args=["--addr", "0.0.0.0:0"]) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{server.url}/health").status_code == 200
        received = post_github(server.url, pr_payload())
        assert received.status_code == 202, received.text
        for method, path in API_ROUTES:
            refused = httpx.request(method, f"{server.url}{path}", json={"prompt": "hi"})
            assert refused.status_code == 403, (path, refused.text)
            shown = refused.json()
            assert "the API is closed" in shown["error"]
            assert "--api-key" in shown["hint"] and "api_key:" in shown["hint"]
        log = server.log()
    assert count_events(home) == 1
    started = [line for line in log.splitlines() if "API closed" in line]
    assert len(started) == 1
    assert "webhooks open, API closed: 0.0.0.0 is beyond loopback" in started[0]
    assert "--api-key" in started[0]


def test_insecure_opens_the_api_on_a_public_address(tmp_path: Path) -> None:
    with ServeProcess(make_home(tmp_path), args=["--addr", "0.0.0.0:0", "--insecure"]) as server:
        for path in ("/events", "/tasks", "/workers", "/metrics"):
            assert httpx.get(f"{server.url}{path}").status_code == 200, path
        log = server.log()
    assert "API closed" not in log


def test_a_public_address_with_a_key_asks_for_it_instead_of_closing(tmp_path: Path) -> None:
    key = "k3y-for-tests-0123456789"
    with ServeProcess(make_home(tmp_path), args=["--addr", "0.0.0.0:0", "--api-key", key]) as srv:
        assert httpx.get(f"{srv.url}/events").status_code == 401
        assert httpx.get(f"{srv.url}/events", headers={"X-API-Key": key}).status_code == 200
        log = srv.log()
    assert "API closed" not in log


def test_a_source_that_takes_the_api_key_is_refused_without_one(tmp_path: Path) -> None:
    home = make_home(tmp_path, config="addr: 0.0.0.0:0\nsources:\n  hooks:\n    auth: api_key\n")
    done = mecha_cli(home, "serve")
    assert done.returncode == 2
    assert "source 'hooks' uses auth: api_key" in done.stderr
    assert "--api-key" in done.stderr


@pytest.mark.parametrize(
    ("key", "words"),
    [(" ", "--api-key is blank"), ("", "--api-key is blank"),
     ("abc123", "--api-key is 6 characters; an API key needs at least 16")],
)  # fmt: skip
def test_a_blank_or_short_api_key_is_refused(tmp_path: Path, key: str, words: str) -> None:
    home = make_home(tmp_path)
    done = mecha_cli(home, "serve", "--addr", "0.0.0.0:0", "--api-key", key)
    assert done.returncode == 2
    assert words in done.stderr and "openssl rand -hex 24" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_short_api_key_from_the_environment_is_refused_where_it_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = make_home(tmp_path, config="addr: 0.0.0.0:0\napi_key: ${SHORT_KEY}\n")
    monkeypatch.setenv("SHORT_KEY", "tiny")
    done = mecha_cli(home, "serve")
    assert done.returncode == 1
    assert "config.yml:2:10" in done.stderr
    assert "api_key (after expanding ${...}) is 4 characters" in done.stderr
    assert "at least 16" in done.stderr and "tiny" not in done.stderr


def test_a_config_yml_others_can_read_is_refused_when_it_holds_the_key(tmp_path: Path) -> None:
    home = make_home(tmp_path, config="api_key: k3y-for-tests-0123456789\n")
    config = home / "config.yml"
    config.chmod(0o644)
    done = mecha_cli(home, "serve")
    assert done.returncode == 1
    assert f"{config} is open to other users (mode 0644)" in done.stderr
    assert "a config.yml that holds a literal api_key must be readable by its owner only" in (
        done.stderr
    )
    assert "chmod 600" in done.stderr and "${MECHA_API_KEY}" in done.stderr
    assert "k3y-for-tests" not in done.stderr


def test_a_config_yml_that_takes_the_key_from_the_environment_may_be_readable(
    tmp_path: Path,
) -> None:
    home = make_home(tmp_path, config="api_key: ${SERVE_KEY}\n")
    (home / "config.yml").chmod(0o644)
    with ServeProcess(home, env={"SERVE_KEY": "env-key-0123456789abcdef"}) as server:
        assert httpx.get(f"{server.url}/events").status_code == 401
        bearer = {"Authorization": "Bearer env-key-0123456789abcdef"}
        assert httpx.get(f"{server.url}/events", headers=bearer).status_code == 200


def test_a_private_config_yml_may_hold_the_key(tmp_path: Path) -> None:
    home = make_home(tmp_path, config="api_key: k3y-for-tests-0123456789\n")
    (home / "config.yml").chmod(0o600)
    with ServeProcess(home) as server:
        bearer = {"Authorization": "Bearer k3y-for-tests-0123456789"}
        assert httpx.get(f"{server.url}/events", headers=bearer).status_code == 200


def test_a_mistake_in_config_yml_is_located(tmp_path: Path) -> None:
    done = mecha_cli(make_home(tmp_path, config="adr: x\n"), "serve")
    assert done.returncode == 1
    assert "config.yml:1:1" in done.stderr
    assert 'did you mean "addr"' in done.stderr
    assert "Traceback" not in done.stderr


def test_a_taken_port_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = mecha_cli(make_home(tmp_path), "serve", "--addr", f"127.0.0.1:{port}")
    assert done.returncode == 1
    assert f"127.0.0.1:{port} is already in use" in done.stderr


def test_a_malformed_address_is_a_usage_error(tmp_path: Path) -> None:
    done = mecha_cli(make_home(tmp_path), "serve", "--addr", "localhost")
    assert done.returncode == 2
    assert 'address "localhost" is not host:port' in done.stderr


def test_with_an_api_key_the_api_needs_it_but_health_and_webhooks_do_not(tmp_path: Path) -> None:
    with ServeProcess(
        make_home(tmp_path), args=["--api-key", "k3y-for-tests-0123456789"]
    ) as server:
        assert httpx.get(f"{server.url}/health").status_code == 200
        refused = httpx.get(f"{server.url}/events")
        assert refused.status_code == 401
        assert "API key" in refused.json()["error"]
        assert httpx.get(f"{server.url}/events", headers={"X-API-Key": "wrong"}).status_code == 401
        ok = httpx.get(
            f"{server.url}/events", headers={"Authorization": "Bearer k3y-for-tests-0123456789"}
        )
        assert ok.status_code == 200
        # GitHub signs its own deliveries: the route is open, the signature is what counts
        assert httpx.post(f"{server.url}/webhook/github", content=b"{}").status_code == 401
        assert "k3y-for-tests-0123456789" not in server.log()


def test_unknown_routes_and_methods_answer_json(tmp_path: Path) -> None:
    with ServeProcess(make_home(tmp_path)) as server:
        missing = httpx.get(f"{server.url}/nope")
        wrong = httpx.get(f"{server.url}/webhook/github")
    assert (missing.status_code, wrong.status_code) == (404, 405)
    assert "error" in missing.json()
    assert "error" in wrong.json()
