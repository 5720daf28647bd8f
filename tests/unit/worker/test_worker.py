"""Worker files: shape, every validation rule, and where each mistake is reported."""

from __future__ import annotations

from collections.abc import Mapping

import jsonschema
import pytest
import yaml

from mecha import samples
from mecha.errors import WorkerFileError
from mecha.event import template_data
from mecha.forges.github.webhook import parse_github
from mecha.forges.gitlab.webhook import parse_gitlab
from mecha.policy.gate import PolicyKind, parse_policy
from mecha.template.prompt import compile_template
from mecha.worker.parser import ParsedWorker, parse_worker
from mecha.worker.spec import WorkerKind, WorkerSpec
from mecha.yaml_doc import load_yaml
from tests.conftest import EXAMPLES

MANAGED = "name: w\ndocker:\n  image: img\n"


def parse(text: str, env: Mapping[str, str] | None = None) -> ParsedWorker:
    return parse_worker(load_yaml(text, file="w.yml"), environ=env or {})


def problems(text: str, env: Mapping[str, str] | None = None) -> list[str]:
    with pytest.raises(WorkerFileError) as caught:
        parse(text, env)
    return [str(p) for p in caught.value.problems]


def only(text: str, env: Mapping[str, str] | None = None) -> str:
    found = problems(text, env)
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------- the seed examples


def test_product_page_pr_reviewer_loads_unchanged() -> None:
    """The product page's managed worker loads as written."""
    spec = parse((EXAMPLES / "pr-reviewer.yml").read_text()).spec
    assert spec.kind is WorkerKind.MANAGED
    assert spec.docker is not None and spec.docker.token == "claude.default"
    assert spec.events[0].on == ["pull_request.opened", "pull_request.synchronize"]
    assert spec.events[0].prompt == "Review this PR for security issues.\n\n{{.diff}}"
    assert spec.policy["comment"] == {"allow": True, "max_length": 2000}


def test_adapter_guide_ollama_loads_unchanged() -> None:
    """The adapter guide's Ollama worker loads as written."""
    spec = parse((EXAMPLES / "local-ollama.yml").read_text()).spec
    assert spec.kind is WorkerKind.ADAPTER
    assert spec.adapter is not None and spec.adapter.model == "gemma2:9b"
    assert spec.timeout_seconds == 600


def test_adapter_guide_vllm_loads_with_its_key_from_the_environment() -> None:
    """The vLLM worker's ${VLLM_API_KEY} is substituted."""
    parsed = parse((EXAMPLES / "vllm-worker.yml").read_text(), {"VLLM_API_KEY": "k-123"})
    assert parsed.spec.adapter is not None and parsed.spec.adapter.api_key == "k-123"
    assert parsed.written["adapter"]["api_key"] == "${VLLM_API_KEY}"
    assert parsed.spec.timeout_seconds == 900


def test_the_readme_first_worker_runs_on_the_embedded_model_with_a_policy() -> None:
    """local-review.yml: the embedded model, both forges, a valid policy that keeps a small
    model from passing checks or suggesting code."""
    parsed = parse((EXAMPLES / "local-review.yml").read_text())
    assert parsed.warnings == ()
    spec = parsed.spec
    assert spec.kind is WorkerKind.ADAPTER
    assert spec.adapter is not None and spec.adapter.type == "local"
    assert [(rule.source, rule.on) for rule in spec.events] == [
        ("github", ["pull_request.opened", "pull_request.synchronize"]),
        ("gitlab", ["merge_request.open", "merge_request.update"]),
    ]
    policy = parse_policy(spec.policy)
    assert policy.kind is PolicyKind.RULES, policy
    assert spec.policy["status"] == {"allow": False}
    assert spec.policy["commit"] == {"allow": False}


@pytest.mark.parametrize(("forge", "name"), [("github", "pull_request.opened"),
                                             ("gitlab", "merge_request.open")])  # fmt: skip
def test_the_first_worker_prompt_renders_for_the_readme_samples(forge: str, name: str) -> None:
    """The samples the README sends make a prompt (no missing key), with the title in it;
    a long diff is cut to its first 3000 characters."""
    sample = samples.load(forge, name)
    headers = {key.lower(): value for key, value in sample.headers.items()}
    delivery = (parse_github if forge == "github" else parse_gitlab)(sample.body, headers)
    spec = parse((EXAMPLES / "local-review.yml").read_text()).spec
    [rule] = [rule for rule in spec.events if rule.source == forge]
    template = compile_template(rule.prompt)
    data = template_data(delivery)
    assert str(delivery.attrs["title"]) in template.render(data)
    with_diff = template.render({**data, "diff": "+" * 5000})
    assert "+" * 3000 in with_diff and "+" * 3001 not in with_diff


# ---------------------------------------------------------------- kinds and defaults


def test_kind_is_inferred_from_the_section_present() -> None:
    """docker → managed, adapter → adapter, endpoint → unmanaged (shown as live)."""
    assert parse(MANAGED).spec.kind is WorkerKind.MANAGED
    spec = parse("name: w\nendpoint: http://127.0.0.1:9000\n").spec
    assert spec.kind is WorkerKind.UNMANAGED and spec.kind.label == "live"


def test_defaults_are_filled_in() -> None:
    """timeout 10m, lifecycle persistent, pids 1024, auto true."""
    spec = parse(MANAGED + "events:\n  - {source: github, on: [push], prompt: p}\n").spec
    assert spec.docker is not None
    assert (spec.timeout, spec.docker.lifecycle, spec.docker.resources.pids) == (
        "10m",
        "persistent",
        1024,
    )
    assert spec.events[0].auto is True


def test_zero_timeout_and_zero_pids_mean_the_defaults() -> None:
    """Upstream reads 0 as 'use the default'."""
    spec = parse(MANAGED + "  resources: {pids: 0}\ntimeout: 0\n").spec
    assert spec.docker is not None and spec.docker.resources.pids == 1024
    assert spec.timeout_seconds == 600


def test_env_numbers_and_booleans_become_text() -> None:
    """As Go's map[string]string decoding did: 1 → "1", true → "true"."""
    spec = parse(MANAGED + "  env: {RETRIES: 3, DEBUG: true}\n").spec
    assert spec.docker is not None and spec.docker.env == {"RETRIES": "3", "DEBUG": "true"}


def test_single_event_type_is_accepted_as_a_list() -> None:
    """on: push means on: [push]."""
    spec = parse(MANAGED + "events:\n  - {source: github, on: push, prompt: p}\n").spec
    assert spec.events[0].on == ["push"]


# ---------------------------------------------------------------- rules, each with its place


def test_file_that_is_not_a_mapping_is_refused() -> None:
    """A list or a bare word is not a worker."""
    assert only("- a\n- b\n").startswith(
        "w.yml:1:1: a worker file must be a mapping; this one is a list"
    )


def test_name_is_required() -> None:
    """Missing name points at the top of the file."""
    assert only("docker:\n  image: x\n").startswith(
        'w.yml:1:1: "name" is required at the top level'
    )


def test_name_pattern_is_enforced() -> None:
    """Names start with a letter or digit; then letters, digits, _ . -."""
    assert only("name: -bad\nendpoint: http://h\n") == (
        'w.yml:1:7: name: "-bad" is not allowed\n'
        "    hint: start with a letter or digit; then letters, digits, _ . - only"
    )


def test_misspelt_key_suggests_the_closest() -> None:
    """An unknown key points at the key and suggests what was meant."""
    assert only("name: w\ndocker:\n  imgae: x\n  image: y\n") == (
        'w.yml:3:3: unknown key "imgae" in docker\n    hint: did you mean "image"?'
    )


def test_misspelt_key_in_an_event_rule_suggests_the_closest() -> None:
    """Event rules are checked the same way."""
    text = MANAGED + "events:\n  - source: github\n    on: [push]\n    promt: p\n"
    found = problems(text)
    assert 'w.yml:7:5: unknown key "promt" in events[0]\n    hint: did you mean "prompt"?' in found
    assert any('"prompt" is required under events[0]' in p for p in found)


def test_unknown_key_without_a_close_match_lists_the_valid_ones() -> None:
    """Nothing close: the hint lists every valid key there."""
    assert "valid keys here: cpu, memory, pids" in only(MANAGED + "  resources: {disk: 1}\n")


def test_a_worker_needs_a_kind() -> None:
    """None of docker/adapter/endpoint is a mistake, pointed at the name."""
    assert only("name: w\n").startswith("w.yml:1:1: the worker has no kind")


def test_docker_and_adapter_are_exclusive() -> None:
    """One file, one kind: the second section is pointed at."""
    text = MANAGED + "adapter: {type: ollama, upstream: http://h, model: m}\n"
    assert only(text).startswith(
        "w.yml:4:1: a worker is one kind, but this file has both docker: and adapter:"
    )


def test_endpoint_with_docker_is_refused() -> None:
    """A managed worker's address is found by Mecha; endpoint: is pointed at."""
    assert only(MANAGED + "endpoint: http://h\n").startswith("w.yml:4:1: a worker is one kind")


def test_image_is_required_for_docker() -> None:
    """docker: without image: points at the docker section."""
    assert only("name: w\ndocker:\n  lifecycle: disposable\n").startswith(
        'w.yml:2:1: "image" is required under docker'
    )


@pytest.mark.parametrize(
    "key", ["HOME", "WORKER_PORT", "worker_api_key", "Worker_Timeout", "WORKER_DRY_RUN"]
)
def test_reserved_env_keys_are_refused_in_any_case(key: str) -> None:
    """The runtime sets these itself."""
    assert only(MANAGED + f"  env: {{{key}: x}}\n").startswith(
        f"w.yml:4:9: docker.env.{key} is set by Mecha itself"
    )


def test_disposable_workers_may_not_set_any_worker_variable() -> None:
    """Disposable containers reserve every WORKER_* key."""
    text = MANAGED + "  lifecycle: disposable\n  env: {WORKER_BACKEND: codex}\n"
    assert "every WORKER_* for disposable workers" in only(text)


def test_token_written_into_env_is_refused() -> None:
    """A literal key in env would land in the database; use token: or ${VAR}."""
    text = MANAGED + "  env: {OPENAI_API_KEY: sk-abcdefghijklmnopqrstuvwxyz123456}\n"
    found = only(text)
    assert found.startswith(
        "w.yml:4:25: docker.env.OPENAI_API_KEY holds a token written into the file"
    )
    assert "sk-abcdefghijklmnop" not in found


def test_token_in_env_from_a_variable_is_accepted() -> None:
    """${VAR} keeps the value out of the file and the database."""
    spec = parse(MANAGED + "  env: {OPENAI_API_KEY: '${K}'}\n", {"K": "sk-" + "a" * 30}).spec
    assert spec.docker is not None and spec.docker.env["OPENAI_API_KEY"].startswith("sk-")


def test_relative_cwd_is_refused() -> None:
    """Workspaces are absolute paths, so they mean the same from any folder."""
    assert only(MANAGED + "  cwd: ./repo\n") == (
        'w.yml:4:8: docker.cwd: "./repo" is a relative path\n'
        "    hint: write the full path, e.g. /home/me/project or ${HOME}/project"
    )


@pytest.mark.parametrize("memory", ["512", "1.5G", "0M", "2GB", "-1G"])
def test_memory_needs_a_whole_number_and_a_unit(memory: str) -> None:
    """<positive int><M|m|G|g>."""
    found = only(MANAGED + f"  resources: {{memory: '{memory}'}}\n")
    assert found.startswith("w.yml:4:23: docker.resources.memory:")
    assert "512M, 2G" in found


def test_memory_in_megabytes_and_gigabytes_is_accepted() -> None:
    """512M and 2g are sizes."""
    spec = parse(MANAGED + "  resources: {memory: 2g, cpu: 1.5}\n").spec
    assert spec.docker is not None and spec.docker.resources.memory == "2g"


def test_negative_cpu_is_refused() -> None:
    """Limits are not negative."""
    assert only(MANAGED + "  resources: {cpu: -1}\n").startswith(
        "w.yml:4:20: docker.resources.cpu must be 0 or more"
    )


def test_unknown_credential_is_refused() -> None:
    """Only claude and codex folders can be mounted."""
    assert only(MANAGED + "  credentials: [claude, gemini]\n").startswith(
        'w.yml:4:16: docker.credentials: "gemini" is not a credential Mecha can mount'
    )


def test_duplicate_credential_is_refused() -> None:
    """Each credential once."""
    assert only(MANAGED + "  credentials: [claude, claude]\n").startswith(
        'w.yml:4:25: credentials lists "claude" twice'
    )


def test_credentials_and_token_are_exclusive() -> None:
    """Both would give the worker its model login twice."""
    text = MANAGED + "  credentials: [claude]\n  token: claude.default\n"
    assert only(text).startswith("w.yml:5:3: docker.credentials and docker.token both")


def test_expose_needs_an_api_key() -> None:
    """Publishing on every interface without a key is refused."""
    assert only(MANAGED + "  expose: true\n").startswith("w.yml:4:3: docker.expose: true publishes")


def test_expose_with_an_api_key_is_accepted() -> None:
    """With a key, expose is allowed."""
    spec = parse(MANAGED + "  expose: true\n  api_key: ${K}\n", {"K": "secret-key"}).spec
    assert spec.docker is not None and spec.docker.expose


def test_expose_must_be_a_real_boolean() -> None:
    """yes is text in YAML 1.2; a quoted or worded boolean is refused, not guessed."""
    assert only(MANAGED + "  expose: yes\n") == (
        'w.yml:4:11: docker.expose must be true or false (unquoted)\n    hint: found the text "yes"'
    )


@pytest.mark.parametrize("ref", ["claude", ".default", "claude.", "a b.c"])
def test_token_reference_must_be_backend_dot_name(ref: str) -> None:
    """References look like claude.default."""
    assert only(MANAGED + f"  token: '{ref}'\n").startswith("w.yml:4:10: docker.token:")


def test_lifecycle_must_be_known() -> None:
    """persistent or disposable."""
    assert only(MANAGED + "  lifecycle: forever\n") == (
        "w.yml:4:14: docker.lifecycle must be 'persistent' or 'disposable'\n"
        '    hint: found the text "forever"'
    )


def test_docker_host_must_be_a_daemon_url() -> None:
    """unix://, tcp://, ssh://."""
    assert only(MANAGED + "  host: http://docker:2375\n").startswith(
        'w.yml:4:9: docker.host: "http://docker:2375" is not a Docker daemon URL'
    )


def test_adapter_type_must_be_known() -> None:
    """ollama, openai or local."""
    text = "name: w\nadapter:\n  type: claude\n  upstream: http://h\n  model: m\n"
    assert only(text).startswith("w.yml:3:9: adapter.type must be 'ollama', 'openai' or 'local'")


def test_adapter_upstream_and_model_are_needed_except_for_local() -> None:
    """The embedded model needs neither; the others say which is missing."""
    assert only("name: w\nadapter:\n  type: openai\n  model: m\n").startswith(
        "w.yml:3:3: adapter: an adapter of type openai needs upstream:"
    )
    spec = WorkerSpec.model_validate({"name": "w", "adapter": {"type": "local"}})
    assert spec.adapter is not None and spec.adapter.upstream == ""


def test_adapter_upstream_must_be_http() -> None:
    """Only http and https upstreams."""
    text = "name: w\nadapter:\n  type: ollama\n  upstream: ftp://h\n  model: m\n"
    assert only(text).startswith(
        'w.yml:4:13: adapter.upstream: "ftp://h" is not an http:// or https://'
    )


@pytest.mark.parametrize("host", ["169.254.169.254", "0.0.0.0", "[fe80::1]"])
def test_adapter_upstream_may_not_be_link_local_or_unspecified(host: str) -> None:
    """Cloud metadata addresses are refused (SSRF guard)."""
    text = f"name: w\nadapter:\n  type: ollama\n  upstream: http://{host}:80\n  model: m\n"
    assert "link-local, unspecified or multicast" in only(text)


def test_endpoint_must_be_a_url() -> None:
    """Unmanaged endpoints are http(s) URLs."""
    assert only("name: w\nendpoint: localhost:9000\n").startswith(
        'w.yml:2:11: endpoint: "localhost:9000" is not an http:// or https:// URL'
    )


@pytest.mark.parametrize(
    ("timeout", "says"), [("soon", "is not a duration"), ("-5m", "is negative")]
)
def test_timeout_must_be_a_positive_duration(timeout: str, says: str) -> None:
    """Go-style durations, not negative."""
    assert says in only(MANAGED + f"timeout: '{timeout}'\n")


def test_unset_variable_is_named_where_it_is_used() -> None:
    """${VAR} with VAR unset: the variable and the place are named, nothing more."""
    assert only("name: w\nendpoint: http://${WORKER_HOST}:9000\n") == (
        "w.yml:2:11: endpoint: environment variable WORKER_HOST is not set\n"
        "    hint: set it before running mecha, or write the value itself"
    )


def test_variables_are_substituted_in_urls_paths_and_keys() -> None:
    """endpoint, docker.host/image/cwd/api_key/env, adapter.upstream/model/api_key."""
    env = {"H": "gpu", "M": "llama", "K": "key-1", "IMG": "img:1"}
    spec = parse(
        "name: w\nadapter:\n  type: openai\n  upstream: http://${H}:8000\n"
        "  model: ${M}\n  api_key: ${K}\n",
        env,
    ).spec
    assert spec.adapter is not None
    assert (spec.adapter.upstream, spec.adapter.model, spec.adapter.api_key) == (
        "http://gpu:8000",
        "llama",
        "key-1",
    )
    assert parse("name: w\ndocker:\n  image: ${IMG}\n", env).spec.docker.image == "img:1"  # type: ignore[union-attr]


def test_prompts_are_not_substituted() -> None:
    """${...} in a prompt is the prompt's own text."""
    text = MANAGED + "events:\n  - {source: github, on: [push], prompt: 'echo ${PATH}'}\n"
    assert parse(text).spec.events[0].prompt == "echo ${PATH}"


def test_event_rule_needs_event_types() -> None:
    """on: [] matches nothing."""
    text = MANAGED + "events:\n  - {source: github, on: [], prompt: p}\n"
    assert only(text).startswith("w.yml:5:26: events[0].on must not be empty")


def test_event_source_must_be_a_name() -> None:
    """Sources are names like github or my-hook."""
    text = MANAGED + "events:\n  - {source: 'git hub', on: [push], prompt: p}\n"
    assert only(text).startswith("w.yml:5:14: events[0].source may hold only letters")


def test_event_auto_must_be_a_boolean() -> None:
    """auto: true or false."""
    text = MANAGED + "events:\n  - {source: github, on: [push], prompt: p, auto: no}\n"
    assert only(text).startswith("w.yml:5:51: events[0].auto must be true or false")


def test_policy_must_be_a_mapping() -> None:
    """policy: is sections of key: value."""
    assert only(MANAGED + "policy: [comment]\n").startswith("w.yml:4:9: policy must be a mapping")


def test_every_mistake_is_reported_at_once() -> None:
    """Several mistakes in one file come back together, in file order."""
    text = "name: w\ndocker:\n  imgae: x\n  lifecycle: forever\n  expose: 1\ntimeout: soon\n"
    found = problems(text)
    assert [p.split(": ")[0] for p in found] == [
        "w.yml:2:1",
        "w.yml:3:3",
        "w.yml:4:14",
        "w.yml:5:11",
        "w.yml:6:10",
    ]


def test_literal_api_key_is_a_warning_not_an_error() -> None:
    """It works, but Mecha says it will not store it."""
    parsed = parse(
        "name: w\nadapter:\n  type: openai\n  upstream: http://h\n  model: m\n  api_key: abc123\n"
    )
    assert len(parsed.warnings) == 1
    assert str(parsed.warnings[0]).startswith(
        "w.yml:6:12: adapter.api_key is written into the file itself"
    )


def test_forge_token_in_env_is_a_warning() -> None:
    """Workers rarely need forge access: Mecha writes back itself."""
    parsed = parse(MANAGED + "  env: {GITHUB_TOKEN: '${GH}'}\n", {"GH": "x"})
    assert any("gives the worker a forge token" in str(w) for w in parsed.warnings)


# ---------------------------------------------------------------- the JSON Schema


def _schema() -> dict[str, object]:
    return WorkerSpec.model_json_schema()


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yml")))
def test_schema_accepts_the_examples(example: str) -> None:
    """Editors using the schema see no error in the shipped examples."""
    jsonschema.validate(
        yaml.safe_load((EXAMPLES / example).read_text().replace("on:", "'on':")), _schema()
    )


def test_schema_refuses_an_unknown_key() -> None:
    """The schema is as strict as the loader."""
    with pytest.raises(jsonschema.ValidationError, match="imgae"):
        jsonschema.validate({"name": "w", "docker": {"imgae": "x"}}, _schema())


def test_schema_describes_fields_for_editors() -> None:
    """Hover text comes from field descriptions."""
    docker = _schema()["$defs"]["DockerSpec"]["properties"]  # type: ignore[index]
    assert "read-write at /workspace" in docker["cwd"]["description"]


def test_schema_timeout_is_a_duration_not_any_scalar() -> None:
    """timeout: a duration string or 0, never true/false."""
    timeout = _schema()["properties"]["timeout"]  # type: ignore[index]
    jsonschema.validate("30m", timeout)
    jsonschema.validate(0, timeout)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(True, timeout)


def test_a_warm_pool_is_for_disposable_workers_only() -> None:
    assert "docker.pool keeps spare containers for disposable workers only" in only(
        MANAGED + "  pool: 2\n"
    )
    spec = parse(MANAGED + "  pool: 2\n  lifecycle: disposable\n").spec
    assert spec.docker is not None and spec.docker.pool == 2


def test_whole_valued_floats_are_whole_numbers_in_a_worker_file() -> None:
    """As the Go program read them: ``concurrency: 2.0`` is 2; ``2.5`` stays a mistake."""
    from mecha.errors import FileError
    from mecha.worker.parser import parse_worker
    from mecha.yaml_doc import load_yaml

    text = (
        "name: w\nendpoint: http://127.0.0.1:9\nconcurrency: 2.0\nmax_retries: 1.0\n"
        "rate_limit: {burst: 3.0}\nbudget: {tokens_per_day: 1000.0}\n"
        "events:\n  - source: github\n    on: [pull_request.opened]\n    prompt: hi\n"
    )
    spec = parse_worker(load_yaml(text, file="w.yml"), environ={}).spec
    assert (spec.concurrency, spec.max_retries, spec.rate_limit.burst) == (2, 1, 3)
    assert spec.budget is not None and spec.budget.tokens_per_day == 1000
    assert type(spec.concurrency) is int
    with pytest.raises(FileError) as caught:
        parse_worker(load_yaml(text.replace("2.0", "2.5"), file="w.yml"), environ={})
    assert "w.yml:3:14: concurrency must be a whole number" in str(caught.value)
