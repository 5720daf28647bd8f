"""A managed worker's container parameters, decided from its file and host facts alone."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from mecha.runtimes.managed.container_spec import (
    NOBODY,
    ContainerSpec,
    ContainerSpecError,
    HostFacts,
    container_spec,
    memory_bytes,
    owner_label,
    read_host,
    run_as,
)
from mecha.worker.spec import DockerSpec
from tests.canaries import canary_secrets

HOME = PurePosixPath("/home/me")
HOST = HostFacts(user="1000:1000", home=HOME)
CLAUDE = "sk-ant-oat01-" + "c" * 40


def docker(**fields: Any) -> DockerSpec:
    return DockerSpec.model_validate({"image": "mecha-worker:latest", **fields})


def spec_of(fields: dict[str, Any] | None = None, **options: Any) -> ContainerSpec:
    options.setdefault("token_value", None)
    options.setdefault("api_key", "")
    options.setdefault("host", HOST)
    return container_spec("reviewer", docker(**(fields or {})), **options)


def env_of(spec: ContainerSpec) -> list[str]:
    return [key for key, _ in spec.env]


def test_persistent_container_is_named_and_labelled_for_its_worker() -> None:
    """mecha-worker-<name>, label mecha.worker=<name>, no lifecycle label."""
    spec = spec_of()
    assert spec.name == "mecha-worker-reviewer"
    assert spec.labels == {"mecha.worker": "reviewer"}
    assert not spec.disposable


def test_disposable_container_gets_a_random_suffix_and_lifecycle_label() -> None:
    """mecha-disposable-<name>-<16 hex>, fresh each time, labelled disposable."""
    first = spec_of({"lifecycle": "disposable"})
    second = spec_of({"lifecycle": "disposable"})
    assert re.fullmatch(r"mecha-disposable-reviewer-[0-9a-f]{16}", first.name)
    assert first.name != second.name
    assert first.labels["mecha.lifecycle"] == "disposable"
    given = spec_of({"lifecycle": "disposable"}, disposable_id="0123456789abcdef")
    assert given.name == "mecha-disposable-reviewer-0123456789abcdef"


def test_a_disposable_container_names_the_mecha_that_owns_it() -> None:
    """mecha.owner: one value per database, so a serve sweeps only its own leftovers."""
    owner = owner_label("/home/a/.mecha/mecha.db")
    assert re.fullmatch(r"[0-9a-f]{16}", owner)
    assert owner != owner_label("/home/b/.mecha/mecha.db")
    assert spec_of({"lifecycle": "disposable"}, owner=owner).labels["mecha.owner"] == owner
    assert "mecha.owner" not in spec_of(owner=owner).labels  # persistent: by its name
    assert "mecha.owner" not in spec_of({"lifecycle": "disposable"}).labels


def test_user_labels_are_kept_but_may_not_use_the_mecha_prefix() -> None:
    """Extra labels pass through; mecha.* is Mecha's own."""
    assert spec_of({"labels": {"team": "infra"}}).labels["team"] == "infra"
    with pytest.raises(ContainerSpecError, match=r"mecha\. prefix"):
        spec_of({"labels": {"Mecha.worker": "other"}})


def test_port_is_published_on_loopback_by_default() -> None:
    """8080/tcp on 127.0.0.1, random host port."""
    assert spec_of().create_kwargs()["ports"] == {"8080/tcp": ("127.0.0.1", None)}


def test_expose_needs_an_api_key() -> None:
    """expose without api_key is refused; with one the port is on all interfaces."""
    with pytest.raises(ContainerSpecError, match="no api_key"):
        spec_of({"expose": True})
    spec = spec_of({"expose": True}, api_key="k" * 20)
    assert spec.create_kwargs()["ports"] == {"8080/tcp": ("0.0.0.0", None)}


def test_container_is_hardened() -> None:
    """Non-root user, no capabilities, no new privileges, init, default pid limit."""
    kwargs = spec_of().create_kwargs()
    assert kwargs["user"] == "1000:1000"
    assert kwargs["cap_drop"] == ["ALL"]
    assert kwargs["security_opt"] == ["no-new-privileges:true"]
    assert kwargs["pids_limit"] == 1024
    assert kwargs["init"] is True
    assert "nano_cpus" not in kwargs
    assert "mem_limit" not in kwargs


def test_resources_become_limits() -> None:
    """cpu times 1e9 nano CPUs, memory in binary units, a custom pid limit."""
    kwargs = spec_of({"resources": {"cpu": 1.5, "memory": "512M", "pids": 64}}).create_kwargs()
    assert kwargs["nano_cpus"] == 1_500_000_000
    assert kwargs["mem_limit"] == 512 * 1024 * 1024
    assert kwargs["pids_limit"] == 64


def test_memory_sizes_use_binary_units() -> None:
    """512M, 2G, 3g; empty means no limit."""
    assert memory_bytes("2G") == 2 * 1024**3
    assert memory_bytes("3g") == 3 * 1024**3
    assert memory_bytes("") == 0


def test_a_root_user_is_refused() -> None:
    """Containers never run as uid 0."""
    with pytest.raises(ContainerSpecError, match="never runs as root"):
        spec_of(host=HostFacts(user="0:0", home=HOME))


def test_run_as_never_picks_root() -> None:
    """The invoking user; as root, the workspace's owner or nobody."""
    assert run_as(1000, 100) == "1000:100"
    assert run_as(0, 0, workspace_owner=(1001, 1002)) == "1001:1002"
    assert run_as(0, 0, workspace_owner=(0, 0)) == NOBODY
    assert run_as(0, 0) == NOBODY


def test_a_safe_workspace_is_mounted_read_write() -> None:
    """cwd → /workspace, read-write, at its resolved path."""
    host = HostFacts(user="1000:1000", home=HOME, cwd=HOME / "project")
    spec = spec_of({"cwd": "~/project"}, host=host)
    assert spec.create_kwargs()["mounts"] == [
        {"Type": "bind", "Source": "/home/me/project", "Target": "/workspace", "ReadOnly": False}
    ]


@pytest.mark.parametrize(
    "resolved",
    ["/etc", "/etc/nginx", "/proc/1", "/dev", "/", "/home/me", "/root", "/home/me/.ssh",
     "/home/me/.mecha/db", "/home/me/.config/gcloud", "/home/me/.claude", "/home/me/.gemini"],
)  # fmt: skip
def test_sensitive_workspaces_are_refused(resolved: str) -> None:
    """System folders, home folders themselves and credential folders never get mounted."""
    host = HostFacts(user="1000:1000", home=HOME, cwd=PurePosixPath(resolved))
    with pytest.raises(ContainerSpecError, match="may not be mounted"):
        spec_of({"cwd": "/srv/link"}, host=host)


def test_a_symlink_into_a_credential_folder_is_refused(tmp_path: Path) -> None:
    """The check is on where the path leads, not how it is written."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (tmp_path / "innocent").symlink_to(home / ".ssh")
    fields = docker(cwd=str(tmp_path / "innocent"))
    host = read_host(fields, home=home, uid=1000, gid=1000)
    assert host.cwd == PurePosixPath(home / ".ssh")
    with pytest.raises(ContainerSpecError, match=r"\.ssh or lies under it"):
        container_spec("w", fields, token_value=None, api_key="", host=host)


def test_a_missing_workspace_is_refused(tmp_path: Path) -> None:
    """cwd must exist and be a folder."""
    with pytest.raises(ContainerSpecError, match="does not exist"):
        read_host(docker(cwd=str(tmp_path / "nope")), home=tmp_path, uid=1000, gid=1000)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ContainerSpecError, match="not a folder"):
        read_host(docker(cwd=str(tmp_path / "file")), home=tmp_path, uid=1000, gid=1000)


def test_read_host_as_root_runs_as_the_workspace_owner(tmp_path: Path) -> None:
    """Root's workers take the workspace owner's uid:gid so they can write it."""
    info = tmp_path.stat()
    host = read_host(docker(cwd=str(tmp_path)), home=tmp_path / "h", uid=0, gid=0)
    expected = f"{info.st_uid}:{info.st_gid}" if info.st_uid else NOBODY
    assert host.user == expected
    assert read_host(docker(), home=tmp_path, uid=1234, gid=5).user == "1234:5"


def test_credentials_are_mounted_read_only_and_set_home() -> None:
    """~/.claude → /home/worker/.claude read-only; HOME=/home/worker."""
    host = HostFacts(user="1000:1000", home=HOME, credentials=frozenset({"claude", "codex"}))
    spec = spec_of({"credentials": ["claude", "codex"]}, host=host)
    assert [(m.source, m.target, m.read_only) for m in spec.mounts] == [
        ("/home/me/.claude", "/home/worker/.claude", True),
        ("/home/me/.codex", "/home/worker/.codex", True),
    ]
    assert dict(spec.env)["HOME"] == "/home/worker"


def test_a_missing_credential_folder_is_refused() -> None:
    """The host folder must exist."""
    with pytest.raises(ContainerSpecError, match=r"/home/me/\.codex does not exist"):
        spec_of({"credentials": ["codex"]})


def test_environment_comes_in_order_and_explicit_env_wins() -> None:
    """Token var, docker.env, WORKER_API_KEY, HOME, plugin lists (newline-joined)."""
    fields = {
        "token": "claude.default",
        "env": {"CLAUDE_MODEL": "opus", "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-override"},
        "plugins": ["a@m", "b@m"],
        "plugin_marketplaces": ["org/market"],
    }
    spec = spec_of(fields, token_value=CLAUDE, api_key="key-123")
    assert spec.env == (
        ("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-override"),
        ("CLAUDE_MODEL", "opus"),
        ("WORKER_API_KEY", "key-123"),
        ("HOME", "/tmp"),
        ("CLAUDE_PLUGINS", "a@m\nb@m"),
        ("CLAUDE_PLUGIN_MARKETPLACES", "org/market"),
    )


@pytest.mark.parametrize(
    ("ref", "value", "var"),
    [
        ("claude.default", CLAUDE, "CLAUDE_CODE_OAUTH_TOKEN"),
        ("claude.api", "sk-ant-api03-" + "a" * 30, "ANTHROPIC_API_KEY"),
        ("codex.default", "sk-" + "x" * 30, "CODEX_API_KEY"),
        ("openai.default", "sk-" + "x" * 30, "OPENAI_API_KEY"),
    ],
)
def test_the_token_goes_into_the_variable_its_prefix_names(ref: str, value: str, var: str) -> None:
    """The env var is chosen by the token's prefix (and backend for openai)."""
    assert env_of(spec_of({"token": ref}, token_value=value))[0] == var


def test_an_unresolved_token_is_refused() -> None:
    """docker.token without a value is the caller's mistake, said plainly."""
    with pytest.raises(ContainerSpecError, match="was not resolved"):
        spec_of({"token": "claude.default"})


@pytest.mark.parametrize("key", ["HOME", "home", "Worker_Port", "WORKER_API_KEY", "worker_dry_run"])
def test_reserved_env_keys_are_refused_in_any_case(key: str) -> None:
    """Mecha sets these itself."""
    with pytest.raises(ContainerSpecError, match="set by Mecha itself"):
        spec_of({"env": {key: "x"}})


def test_disposable_workers_may_set_no_worker_variable() -> None:
    """Any WORKER_* is refused for disposable workers, allowed for persistent ones."""
    assert "WORKER_BACKEND" in env_of(spec_of({"env": {"WORKER_BACKEND": "claude"}}))
    with pytest.raises(ContainerSpecError, match="every WORKER_"):
        spec_of({"lifecycle": "disposable", "env": {"WORKER_BACKEND": "claude"}})


def test_env_names_must_be_names() -> None:
    """A key with = or a space would corrupt the container's environment."""
    with pytest.raises(ContainerSpecError, match="not an environment variable name"):
        spec_of({"env": {"A=B": "x"}})


@pytest.mark.parametrize("value", ["ghp_" + "a" * 36, "github_pat_" + "b" * 40, "glpat-abc"])
def test_forge_tokens_never_go_into_the_environment(value: str) -> None:
    """Workers get their LLM credential only; Mecha keeps forge tokens."""
    with pytest.raises(ContainerSpecError, match="forge or chat token"):
        spec_of({"env": {"GH_TOKEN": value}})


CANARIES = canary_secrets(CLAUDE)


def canary_spec(**fields: Any) -> ContainerSpec:
    fields = {"token": "claude.default", **fields}
    return spec_of(
        fields,
        token_value=CANARIES.resolve("claude.default"),
        api_key="worker-key-1",
        withheld=CANARIES.values(),
    )


def test_only_the_workers_own_token_reaches_the_container() -> None:
    """Of every secret in the file, only the named LLM token is in the parameters."""
    text = repr(canary_spec(labels={"team": "x"}, plugins=["p@m"]).create_kwargs())
    assert f"CLAUDE_CODE_OAUTH_TOKEN={CLAUDE}" in text
    for value in CANARIES.values() - {CLAUDE}:
        assert value not in text


@pytest.mark.parametrize(
    "fields",
    [
        {"env": {"HOOK": "canary-github-hook-2"}},
        {"env": {"URL": "https://x/?t=canary-jenkins-source"}},
        {"labels": {"secret": "canary-telegram"}},
        {"plugins": ["canary-slack-signing"]},
    ],
)
def test_another_secret_anywhere_in_the_parameters_is_refused(fields: dict[str, Any]) -> None:
    """A secret from the file smuggled in through env, labels or plugins is refused."""
    with pytest.raises(ContainerSpecError, match="not the worker's own token") as caught:
        canary_spec(**fields)
    assert "canary" not in str(caught.value)


def test_an_api_key_that_is_another_secret_is_refused() -> None:
    """Reusing a webhook secret as the worker's api_key would hand it to the worker."""
    with pytest.raises(ContainerSpecError, match="WORKER_API_KEY"):
        spec_of(api_key="canary-github-hook-1", withheld=CANARIES.values())


def test_repr_and_redacted_never_show_env_values() -> None:
    """Keys are shown, values are not: not the token, not the api key."""
    spec = canary_spec(env={"CLAUDE_MODEL": "secret-model-name"})
    for shown in (repr(spec), str(spec), repr(spec.redacted())):
        assert "CLAUDE_CODE_OAUTH_TOKEN=<hidden>" in shown
        assert CLAUDE not in shown
        assert "worker-key-1" not in shown
        assert "secret-model-name" not in shown
    assert spec.create_kwargs()["environment"] != spec.redacted()["environment"]
