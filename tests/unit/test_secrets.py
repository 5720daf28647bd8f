"""The secrets file: parsing with file:line:col problems, mode check, references, env vars."""

from __future__ import annotations

import pytest

from mecha.errors import Problem, SecretsError, SecretsFileError
from mecha.secrets import (
    GitHubSecrets,
    GitLabSecrets,
    Secrets,
    check_secrets_mode,
    parse_reference,
    parse_secrets,
    token_env_var,
)

FILE = "secrets.yml"
UPSTREAM = """\
tokens:
  claude: {default: sk-ant-oat01-AAAA, api: sk-ant-api03-BBBB}
  codex:  {default: sk-CCCC}
github:   {token: ghp_DDDD, webhook_secret: hook-EEEE}
gitlab:   {webhook_secret: gl-FFFF}
slack:    {signing_secret: slack-GGGG}
telegram: {secret_token: tg-HHHH}
"""


def _problems(text: str) -> list[Problem]:
    with pytest.raises(SecretsFileError) as caught:
        parse_secrets(text, file=FILE)
    return list(caught.value.problems)


def _one(text: str) -> Problem:
    problems = _problems(text)
    assert len(problems) == 1, problems
    return problems[0]


def _secrets() -> Secrets:
    return parse_secrets(UPSTREAM, file=FILE)


def test_upstream_example_parses_unchanged() -> None:
    """The file format of the Go version is read as it is."""
    secrets = _secrets()
    assert secrets.tokens == {
        "claude": {"default": "sk-ant-oat01-AAAA", "api": "sk-ant-api03-BBBB"},
        "codex": {"default": "sk-CCCC"},
    }
    assert secrets.github == GitHubSecrets(token="ghp_DDDD", webhook_secrets=("hook-EEEE",))
    assert secrets.gitlab == GitLabSecrets(webhook_secrets=("gl-FFFF",))
    assert secrets.slack_signing_secret == "slack-GGGG"
    assert secrets.telegram_secret_token == "tg-HHHH"
    assert secrets.sources == {}


def test_webhook_secrets_may_be_lists_for_rotation() -> None:
    """webhook_secret and signing_token take one text or a list of texts."""
    text = (
        "github: {webhook_secret: [old-1111, new-2222]}\n"
        "gitlab: {webhook_secret: [a-3333], signing_token: [s-4444, s-5555]}\n"
    )
    secrets = parse_secrets(text, file=FILE)
    assert secrets.github.webhook_secrets == ("old-1111", "new-2222")
    assert secrets.gitlab.webhook_secrets == ("a-3333",)
    assert secrets.gitlab.signing_tokens == ("s-4444", "s-5555")


def test_gitlab_token_and_url_are_read() -> None:
    """Our gitlab additions: an API token and the instance URL."""
    text = "gitlab:\n  token: glpat-XXXX\n  url: https://gitlab.example.com\n"
    gitlab = parse_secrets(text, file=FILE).gitlab
    assert (gitlab.token, gitlab.url) == ("glpat-XXXX", "https://gitlab.example.com")


def test_sources_hold_secrets_per_source_name() -> None:
    """sources.<name> maps keys to secrets for generic webhook sources."""
    secrets = parse_secrets("sources:\n  jenkins: {secret: j-1234}\n", file=FILE)
    assert secrets.sources == {"jenkins": {"secret": "j-1234"}}


@pytest.mark.parametrize("text", ["", "\n", "# nothing yet\n"])
def test_empty_file_is_empty_secrets(text: str) -> None:
    """A file with no content means no secrets, not a mistake."""
    assert parse_secrets(text, file=FILE) == Secrets.empty()


def test_section_left_empty_is_empty() -> None:
    """A section written with nothing under it holds nothing."""
    assert parse_secrets("tokens:\ngithub:\n", file=FILE) == Secrets.empty()


def test_misspelt_top_key_suggests_the_closest() -> None:
    """tokns: is refused at its key with 'did you mean "tokens"?'."""
    problem = _one("tokns:\n  claude: {default: sk-ant-oat01-AAAA}\n")
    assert str(problem.location) == "secrets.yml:1:1"
    assert problem.message == 'unknown key "tokns" at the top of the secrets file'
    assert problem.hint == 'did you mean "tokens"?'


def test_misspelt_section_key_suggests_the_closest() -> None:
    """An unknown key inside a section is pointed at and corrected."""
    problem = _one("gitlab:\n  url: https://g.example\n  signin_token: x-1234\n")
    assert str(problem.location) == "secrets.yml:3:3"
    assert problem.message == 'unknown key "signin_token" under gitlab'
    assert problem.hint == 'did you mean "signing_token"?'


def test_unknown_key_far_from_any_lists_the_valid_ones() -> None:
    """With nothing close, the hint lists what may be written there."""
    problem = _one("slack: {zzz: x}\n")
    assert str(problem.location) == "secrets.yml:1:9"
    assert problem.hint == "valid keys: signing_secret"


def test_non_string_secret_is_refused_at_its_value() -> None:
    """A number where a secret belongs is pointed at, with the type found."""
    problem = _one("github:\n  token: 12345678\n")
    assert str(problem.location) == "secrets.yml:2:10"
    assert problem.message == "github.token must be text, found a number"
    assert problem.hint.startswith("write it as text; quote it")


def test_mapping_where_a_secret_belongs_is_refused() -> None:
    """A mapping is not a secret either."""
    problem = _one("slack: {signing_secret: {a: b}}\n")
    assert str(problem.location) == "secrets.yml:1:25"
    assert problem.message == "slack.signing_secret must be text, found a mapping"


@pytest.mark.parametrize(
    ("text", "spot"),
    [("github:\n  token:\n", "secrets.yml:2:9"), ('github:\n  token: ""\n', "secrets.yml:2:10")],
)
def test_empty_secret_is_refused(text: str, spot: str) -> None:
    """A key with no value or an empty text is a mistake, with a hint to fill or remove it."""
    problem = _one(text)
    assert str(problem.location) == spot
    assert problem.message == "github.token is empty"
    assert problem.hint == "write the value after the colon, or remove the line"


def test_empty_token_value_is_refused() -> None:
    """An empty value under tokens is named by its path."""
    problem = _one("tokens:\n  claude:\n    default: ''\n")
    assert str(problem.location) == "secrets.yml:3:14"
    assert problem.message == "tokens.claude.default is empty"


def test_list_items_must_be_non_empty_text() -> None:
    """Each bad item of a secrets list is reported at its own index."""
    problems = _problems('github:\n  webhook_secret: [one-1111, 2, ""]\n')
    assert [(str(p.location), p.message) for p in problems] == [
        ("secrets.yml:2:30", "github.webhook_secret[1] must be text, found a number"),
        ("secrets.yml:2:33", "github.webhook_secret[2] is empty"),
    ]


def test_empty_list_is_refused() -> None:
    """An empty list accepts no webhook at all, so it is a mistake."""
    problem = _one("gitlab: {signing_token: []}\n")
    assert str(problem.location) == "secrets.yml:1:25"
    assert problem.message == "gitlab.signing_token is empty"


def test_mapping_where_a_list_belongs_is_refused() -> None:
    """webhook_secret takes text or a list, not a mapping."""
    problem = _one("gitlab:\n  webhook_secret: {a: b}\n")
    assert str(problem.location) == "secrets.yml:2:19"
    assert (
        problem.message == "gitlab.webhook_secret must be text or a list of texts, found a mapping"
    )


def test_section_must_be_a_mapping() -> None:
    """A section written as a plain value is refused at that value."""
    problem = _one("tokens:\n  claude: sk-ant-oat01-AAAA\n")
    assert str(problem.location) == "secrets.yml:2:11"
    assert problem.message == ("tokens.claude must be a mapping of key: value lines, found text")


def test_file_must_be_a_mapping() -> None:
    """A file holding a list is refused at its start."""
    problem = _one("- a\n- b\n")
    assert str(problem.location) == "secrets.yml:1:1"
    assert problem.message.startswith("the secrets file must be a mapping")


def test_backend_name_with_a_dot_is_refused() -> None:
    """A reference splits at the first '.', so a backend name cannot hold one."""
    problem = _one("tokens:\n  my.claude: {default: sk-ant-oat01-AAAA}\n")
    assert str(problem.location) == "secrets.yml:2:3"
    assert problem.message == 'backend name "my.claude" may only hold letters, digits, "-" and "_"'
    assert 'use "-" or "_"' in problem.hint


def test_token_name_with_a_space_is_refused() -> None:
    """Token names follow the same pattern as backends."""
    problem = _one("tokens:\n  claude:\n    my key: sk-ant-oat01-AAAA\n")
    assert str(problem.location) == "secrets.yml:3:5"
    assert problem.message == 'token name "my key" may only hold letters, digits, "-" and "_"'
    assert problem.hint.startswith("rename it")


def test_source_name_with_a_dot_is_refused() -> None:
    """Source names follow the name pattern too."""
    problem = _one("sources:\n  ci.main: {secret: s-1234}\n")
    assert str(problem.location) == "secrets.yml:2:3"
    assert problem.message.startswith('source name "ci.main"')


def test_gitlab_url_must_be_http() -> None:
    """gitlab.url must start with http:// or https://."""
    problem = _one("gitlab: {url: gitlab.example.com}\n")
    assert str(problem.location) == "secrets.yml:1:15"
    assert problem.message == "gitlab.url is not an http(s) URL"


PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
APP = "github:\n  app_id: 12345\n  private_key: |\n" + "".join(
    f"    {line}\n" for line in PEM.splitlines()
)


def test_github_app_id_and_private_key_are_read() -> None:
    """A GitHub App: app_id (a number) and the PEM private key as a block."""
    github = parse_secrets(APP, file=FILE).github
    assert (github.app_id, github.private_key, github.private_key_path) == ("12345", PEM, "")


def test_github_app_id_may_be_quoted_and_the_key_a_path() -> None:
    """app_id as text of digits; the key in a file named by private_key_path."""
    text = 'github: {app_id: "987", private_key_path: ~/.mecha/app.pem}\n'
    github = parse_secrets(text, file=FILE).github
    assert (github.app_id, github.private_key, github.private_key_path) == (
        "987",
        "",
        "~/.mecha/app.pem",
    )


def test_github_private_key_is_a_secret_and_the_path_is_not() -> None:
    """values() holds the private key for the redactor; repr shows neither key nor token."""
    secrets = parse_secrets(APP, file=FILE)
    assert PEM in secrets.values()
    assert "PRIVATE KEY" not in repr(secrets.github) + repr(secrets)
    path = parse_secrets("github: {app_id: 1, private_key_path: /k.pem}\n", file=FILE)
    assert path.values() == frozenset()


@pytest.mark.parametrize(
    ("text", "spot", "message"),
    [
        (
            "github: {app_id: abc, private_key_path: /k}\n",
            "secrets.yml:1:18",
            "github.app_id must be a GitHub App id (a positive number), found text",
        ),
        (
            "github: {app_id: 0, private_key_path: /k}\n",
            "secrets.yml:1:18",
            "github.app_id must be a GitHub App id (a positive number), found 0",
        ),
        (
            "github: {app_id: 5}\n",
            "secrets.yml:1:10",
            "github.app_id needs github.private_key or github.private_key_path",
        ),
        (
            "github: {private_key_path: /k}\n",
            "secrets.yml:1:10",
            "github.private_key_path needs github.app_id (the GitHub App's id)",
        ),
        (
            "github: {app_id: 5, private_key_path: /k, "
            "private_key: '-----BEGIN PRIVATE KEY-----'}\n",
            "secrets.yml:1:21",
            "github.private_key and github.private_key_path are both set",
        ),
    ],
)
def test_github_app_settings_are_checked(text: str, spot: str, message: str) -> None:
    """A bad app_id, an id without a key, a key without an id, or two keys are refused."""
    problem = _one(text)
    assert (str(problem.location), problem.message) == (spot, message)


def test_github_private_key_that_is_not_pem_is_refused_unshown() -> None:
    """A token pasted as private_key is refused, and not shown."""
    problem = _one("github: {app_id: 5, private_key: ghp_SECRETVALUE1}\n")
    assert problem.message == "github.private_key is not a PEM private key (not shown)"
    assert "SECRETVALUE1" not in str(problem)
    assert "private_key_path" in problem.hint


def test_every_problem_is_collected_in_file_order() -> None:
    """All mistakes come back at once, ordered by line."""
    text = "tokens:\n  claude: {default: 1}\ngithub: {tokn: x}\nslakc: {}\n"
    assert [str(p.location) for p in _problems(text)] == [
        "secrets.yml:2:21",
        "secrets.yml:3:10",
        "secrets.yml:4:1",
    ]


def test_yaml_syntax_error_is_a_secrets_file_error() -> None:
    """load_yaml's FileError comes back as SecretsFileError with the same problem."""
    with pytest.raises(SecretsFileError) as caught:
        parse_secrets("tokens: [\n", file=FILE)
    assert caught.value.problems[0].message.startswith("YAML syntax error")
    assert str(caught.value.problems[0].location).startswith("secrets.yml:2:")


def test_duplicate_key_is_a_secrets_file_error() -> None:
    """Two equal keys are refused, not silently merged."""
    problem = _one("slack: {signing_secret: a-1111}\nslack: {signing_secret: b-2222}\n")
    assert str(problem.location) == "secrets.yml:2:1"
    assert problem.message == 'key "slack" appears twice'


@pytest.mark.parametrize(
    "text",
    [
        "github: {token: ghp_SECRETVALUE1, tokn: ghp_SECRETVALUE1}\n",
        "github: ghp_SECRETVALUE1\n",
        "tokens: {claude: sk-ant-oat01-SECRETVALUE1}\n",
        "tokens: {claude: {sk-ant-oat01-SECRETVALUE1}}\n",
        "tokens: {my.claude: {default: sk-ant-oat01-SECRETVALUE1}}\n",
        "tokens: {sk-ant-oat01-SECRETVALUE1: {default: ''}}\n",
        "gitlab: {url: SECRETVALUE1, webhook_secret: {SECRETVALUE1: 1}}\n",
        "{ghp_SECRETVALUE1: 1}\n",
    ],
)
def test_no_secret_value_appears_in_an_error(text: str) -> None:
    """Errors name keys; a value, or a key that looks like a token, is never shown."""
    with pytest.raises(SecretsFileError) as caught:
        parse_secrets(text, file=FILE)
    assert "SECRETVALUE1" not in str(caught.value)


def test_repr_of_secrets_shows_names_not_values() -> None:
    """Printing Secrets (e.g. in a debug log) shows no secret."""
    text = repr(_secrets()) + repr(_secrets().github) + repr(_secrets().gitlab)
    assert "claude" in text
    assert not any(value in text for value in _secrets().values())


def test_values_lists_every_secret() -> None:
    """values() gives the redactor everything in the file, and nothing that is not secret."""
    text = UPSTREAM.replace("gitlab:   {", "gitlab:   {url: https://gl.example, ")
    text += "sources: {ci: {secret: ci-IIII}}\n"
    assert parse_secrets(text, file=FILE).values() == {
        *("sk-ant-oat01-AAAA", "sk-ant-api03-BBBB", "sk-CCCC", "ghp_DDDD", "hook-EEEE"),
        *("gl-FFFF", "slack-GGGG", "tg-HHHH", "ci-IIII"),
    }


def test_secrets_built_from_dicts_cannot_be_changed() -> None:
    """Secrets freezes the mappings it is given."""
    table = {"claude": {"default": "sk-ant-oat01-AAAA"}}
    secrets = Secrets(tokens=table)
    table["claude"]["default"] = "changed"
    assert secrets.resolve("claude.default") == "sk-ant-oat01-AAAA"
    with pytest.raises(TypeError):
        secrets.tokens["claude"]["other"] = "x"  # type: ignore[index]


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o100600, 0o700])
def test_owner_only_mode_is_accepted(mode: int) -> None:
    """No group or other bits: the file may be used."""
    check_secrets_mode(mode, path="/home/me/.mecha/secrets.yml")


@pytest.mark.parametrize(("mode", "shown"), [(0o640, "0640"), (0o604, "0604"), (0o100644, "0644")])
def test_mode_open_to_others_is_refused_with_chmod_hint(mode: int, shown: str) -> None:
    """Any group/other bit is refused, naming the path and mode, hinting chmod 600."""
    with pytest.raises(SecretsError) as caught:
        check_secrets_mode(mode, path="/home/me/.mecha/secrets.yml")
    assert "/home/me/.mecha/secrets.yml" in caught.value.message
    assert f"mode {shown}" in caught.value.message
    assert caught.value.hint == "chmod 600 /home/me/.mecha/secrets.yml"


def test_mode_hint_quotes_a_path_with_spaces() -> None:
    """The chmod hint can be pasted into a shell as it is."""
    with pytest.raises(SecretsError) as caught:
        check_secrets_mode(0o644, path="/home/a b/secrets.yml")
    assert caught.value.hint == "chmod 600 '/home/a b/secrets.yml'"


def test_reference_splits_at_the_first_dot() -> None:
    """backend.name gives (backend, name)."""
    assert parse_reference("claude.default") == ("claude", "default")
    assert parse_reference("my-codex.key_2") == ("my-codex", "key_2")


@pytest.mark.parametrize("ref", ["claude", ".default", "claude.", "", "cl aude.x", "a.b.c"])
def test_malformed_reference_is_refused_with_hint(ref: str) -> None:
    """Anything but two non-empty names around one '.' is refused."""
    with pytest.raises(SecretsError) as caught:
        parse_reference(ref)
    assert "backend.name" in caught.value.message or "may only hold" in caught.value.message
    assert caught.value.hint.startswith("write it as backend.name, e.g. claude.default")


def test_reference_holding_a_token_is_refused_without_showing_it() -> None:
    """A token pasted where a reference belongs is not echoed back."""
    with pytest.raises(SecretsError) as caught:
        parse_reference("sk-ant-oat01-SECRETVALUE1")
    assert "SECRETVALUE1" not in str(caught.value)
    assert "looks like a token" in caught.value.message


def test_resolve_returns_the_token() -> None:
    """A reference gives the value stored under tokens.backend.name."""
    assert _secrets().resolve("claude.api") == "sk-ant-api03-BBBB"


def test_resolve_with_no_secrets_hints_at_creating_the_file() -> None:
    """Empty secrets: the hint says which file to create and what section to write."""
    with pytest.raises(SecretsError) as caught:
        Secrets.empty().resolve("claude.default")
    assert "no secrets are loaded" in caught.value.message
    assert "~/.mecha/secrets.yml" in caught.value.hint
    assert "tokens:" in caught.value.hint


def test_resolve_without_a_tokens_section_says_so() -> None:
    """Other secrets but no tokens: the message says the section is missing."""
    secrets = parse_secrets("slack: {signing_secret: s-1234}\n", file=FILE)
    with pytest.raises(SecretsError) as caught:
        secrets.resolve("claude.default")
    assert "there is no tokens: section" in caught.value.message


def test_resolve_unknown_backend_lists_the_backends() -> None:
    """The error names the backends there are, and no value."""
    with pytest.raises(SecretsError) as caught:
        _secrets().resolve("gemini.default")
    assert 'no tokens for backend "gemini"' in caught.value.message
    assert "backends in the secrets file: claude, codex" in caught.value.hint
    assert not any(value in str(caught.value) for value in _secrets().values())


def test_resolve_unknown_name_lists_the_names() -> None:
    """The error names the tokens the backend has, and no value."""
    with pytest.raises(SecretsError) as caught:
        _secrets().resolve("claude.work")
    assert 'backend "claude" has no token named "work"' in caught.value.message
    assert caught.value.hint == "names under tokens.claude: api, default"
    assert not any(value in str(caught.value) for value in _secrets().values())


@pytest.mark.parametrize(
    ("value", "backend", "env"),
    [
        ("sk-ant-oat01-AAAA", "claude", "CLAUDE_CODE_OAUTH_TOKEN"),
        ("sk-ant-api03-AAAA", "claude", "ANTHROPIC_API_KEY"),
        ("sk-proj-AAAA", "codex", "CODEX_API_KEY"),
        ("sk-AAAA", "", "CODEX_API_KEY"),
        ("sk-AAAA", "openai", "OPENAI_API_KEY"),
        ("AIzaSyAAAA", "gemini", "GEMINI_API_KEY"),
    ],
)
def test_token_prefix_chooses_the_env_var(value: str, backend: str, env: str) -> None:
    """The token's prefix (and the openai backend) decide where it is injected."""
    assert token_env_var(value, backend=backend) == env


def test_unknown_token_format_is_refused_without_the_value() -> None:
    """An unrecognised token is refused; the hint lists the prefixes, the value is not shown."""
    with pytest.raises(SecretsError) as caught:
        token_env_var("xyz-SECRETVALUE1", backend="claude")
    assert caught.value.message.startswith("unknown token format")
    assert "SECRETVALUE1" not in str(caught.value)
    assert all(p in caught.value.hint for p in ("sk-ant-oat", "sk-ant-", "sk-", "AIza"))
