"""A node's lease: config.yml ``dispatch: lease:``, MECHA_LEASE over it, 30 s without."""

from __future__ import annotations

from pathlib import Path

import pytest

from mecha.app.serve import dispatch_settings
from mecha.config.environment import resolve_server
from mecha.config.server_file import ServerConfig, parse_config
from mecha.errors import ConfigError
from mecha.yaml_doc import load_yaml


def config(text: str, tmp_path: Path) -> ServerConfig:
    return parse_config(text, file=str(tmp_path / "config.yml"), environ={})


def test_the_lease_is_30_seconds_unless_set() -> None:
    assert dispatch_settings(ServerConfig()).lease == 30.0


def test_config_yml_sets_the_lease(tmp_path: Path) -> None:
    assert dispatch_settings(config("dispatch:\n  lease: 5s\n", tmp_path)).lease == 5.0


def test_mecha_lease_wins_over_config_yml(tmp_path: Path) -> None:
    doc = load_yaml("dispatch:\n  lease: 5s\n", file=str(tmp_path / "config.yml"))
    resolved = resolve_server(doc, {"MECHA_LEASE": "2s"}, shown_file="config.yml")
    assert dispatch_settings(resolved).lease == 2.0


def test_a_lease_that_is_no_duration_is_refused_where_it_is_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        config("dispatch:\n  lease: soon\n", tmp_path)
    assert "config.yml:2" in str(caught.value)
