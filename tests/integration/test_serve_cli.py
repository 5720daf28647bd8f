"""`mecha serve` refusing to start, with reasons: exposure without a key, bad config, taken port."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from mecha.testing.serve_process import ServeProcess
from tests.integration.serving import make_home, mecha_cli


def test_a_public_address_without_an_api_key_is_refused(tmp_path: Path) -> None:
    done = mecha_cli(make_home(tmp_path), "serve", "--addr", "0.0.0.0:0")
    assert done.returncode == 2
    assert "refusing to listen on 0.0.0.0 without an API key" in done.stderr
    assert "--insecure" in done.stderr


def test_the_config_file_address_is_checked_too(tmp_path: Path) -> None:
    done = mecha_cli(make_home(tmp_path, config="addr: ':0'\n"), "serve")
    assert done.returncode == 2
    assert "refusing to listen" in done.stderr


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
    with ServeProcess(make_home(tmp_path), args=["--api-key", "k3y-for-tests"]) as server:
        assert httpx.get(f"{server.url}/health").status_code == 200
        refused = httpx.get(f"{server.url}/events")
        assert refused.status_code == 401
        assert "API key" in refused.json()["error"]
        assert httpx.get(f"{server.url}/events", headers={"X-API-Key": "wrong"}).status_code == 401
        ok = httpx.get(f"{server.url}/events", headers={"Authorization": "Bearer k3y-for-tests"})
        assert ok.status_code == 200
        # GitHub signs its own deliveries: the route is open, the signature is what counts
        assert httpx.post(f"{server.url}/webhook/github", content=b"{}").status_code == 401
        assert "k3y-for-tests" not in server.log()


def test_unknown_routes_and_methods_answer_json(tmp_path: Path) -> None:
    with ServeProcess(make_home(tmp_path)) as server:
        missing = httpx.get(f"{server.url}/nope")
        wrong = httpx.get(f"{server.url}/webhook/github")
    assert (missing.status_code, wrong.status_code) == (404, 405)
    assert "error" in missing.json()
    assert "error" in wrong.json()
