"""Hydration against the forge API emulator: real HTTP on loopback, GitHub and GitLab."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mecha.forges.fetch import fetch
from mecha.forges.github.hydrate import DIFF_ACCEPT, GitHubAuth, GitHubClient
from mecha.forges.gitlab.hydrate import GitLabClient
from mecha.forges.hydration import Hydration
from mecha.testing.forge.api import FileChange, ForgeEmulator

BASE = "1a" * 20
HEAD = "2b" * 20
TOKEN = "ghp_" + "T" * 36
GL_TOKEN = "glpat-" + "G" * 20
PR = {"repo_owner": "octo", "repo_name": "hello", "number": 7}
PINNED = {**PR, "base_sha": BASE, "head_sha": HEAD}
APP_ID = "12345"


def _files(count: int, lines: int = 2, prefix: str = "src/f") -> list[FileChange]:
    patch = "@@ -1 +1 @@\n" + "".join(f"+line {i}\n" for i in range(lines))
    return [FileChange(f"{prefix}{i:03d}.py", patch, additions=lines) for i in range(count)]


@pytest.fixture
def forge() -> Iterator[ForgeEmulator]:
    """An emulator that wants TOKEN on GitHub and GL_TOKEN on GitLab."""
    with ForgeEmulator(github_token=TOKEN, gitlab_token=GL_TOKEN) as emulator:
        yield emulator


def _github(
    forge: ForgeEmulator,
    attrs: Mapping[str, Any],
    *,
    auth: GitHubAuth | None = None,
    api_url: str = "",
    **options: Any,
) -> Hydration:
    async def run() -> Hydration:
        async with httpx.AsyncClient() as http:
            client = GitHubClient(
                http,
                api_url=api_url or forge.github_url,
                auth=auth or GitHubAuth.token(TOKEN),
                **options,
            )
            return await client.hydrate(attrs)

    return asyncio.run(run())


def _gitlab(
    forge: ForgeEmulator, attrs: Mapping[str, Any], *, token: str = GL_TOKEN, **options: Any
) -> Hydration:
    async def run() -> Hydration:
        async with httpx.AsyncClient() as http:
            client = GitLabClient(http, base_url=forge.gitlab_url, token=token, **options)
            return await client.hydrate(attrs)

    return asyncio.run(run())


def _assert_failed(hydration: Hydration, *parts: str) -> None:
    assert hydration.error, hydration
    for part in parts:
        assert part in hydration.error
    assert hydration.attrs["diff"] == ""
    assert hydration.attrs["diff_error"] == hydration.error
    for secret in (TOKEN, GL_TOKEN, "ghs_"):
        assert secret not in hydration.error


# ------------------------------------------------------------------ GitHub


def test_github_with_both_shas_uses_the_pinned_compare(forge: ForgeEmulator) -> None:
    """compare/{base}...{head} with the diff media type and the token as Bearer."""
    forge.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=HEAD, files=_files(3))
    hydration = _github(forge, PINNED)
    assert hydration.error == ""
    first = forge.requests[0]
    compare = f"/github/repos/octo/hello/compare/{BASE}...{HEAD}"
    assert {r.path for r in forge.requests} == {compare, "/github/repos/octo/hello/pulls/7/files"}
    diff_request = next(r for r in forge.requests if r.path == compare)
    assert diff_request.headers["accept"] == DIFF_ACCEPT
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert hydration.attrs["diff"].startswith("diff --git a/src/f000.py b/src/f000.py\n")
    assert hydration.attrs["diff"].count("diff --git ") == 3
    assert hydration.attrs["file_list"] == "src/f000.py\nsrc/f001.py\nsrc/f002.py"
    assert hydration.attrs["diff_truncated"] == "false"
    assert hydration.attrs["files_omitted"] == hydration.attrs["diff_error"] == ""


def test_github_without_shas_falls_back_to_the_pull_request_diff(forge: ForgeEmulator) -> None:
    """No SHAs: GET /pulls/{n} with the diff media type."""
    forge.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=HEAD, files=_files(2))
    hydration = _github(forge, PR)
    assert hydration.error == ""
    diff_requests = [r for r in forge.requests if r.path == "/github/repos/octo/hello/pulls/7"]
    assert [r.headers["accept"] for r in diff_requests] == [DIFF_ACCEPT]
    assert "+++ b/src/f001.py" in hydration.attrs["diff"]


def test_github_file_list_follows_link_next_across_three_pages(forge: ForgeEmulator) -> None:
    """per_page=100, then the Link rel="next" URLs, in order, until there is none."""
    forge.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=HEAD, files=_files(250, 1))
    hydration = _github(forge, PINNED)
    pages = [r.query for r in forge.requests if r.path.endswith("/pulls/7/files")]
    assert pages == [
        {"per_page": "100"},
        {"per_page": "100", "page": "2"},
        {"per_page": "100", "page": "3"},
    ]
    assert hydration.attrs["file_list"].split("\n") == [f"src/f{i:03d}.py" for i in range(250)]


def test_github_truncation_keeps_whole_files_and_lists_the_rest(forge: ForgeEmulator) -> None:
    """40 files, room for some: the marker, diff_truncated and files_omitted say which."""
    forge.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=HEAD, files=_files(40, 30))
    hydration = _github(forge, PINNED, max_diff_bytes=10_000)
    attrs = hydration.attrs
    omitted = attrs["files_omitted"].split("\n")
    shown = attrs["diff"].count("diff --git ")
    assert attrs["diff_truncated"] == "true"
    assert shown + len(omitted) == 40
    assert omitted[-1] == "src/f039.py"
    body, marker = attrs["diff"].rstrip("\n").rsplit("\n", 1)
    assert len(body.encode()) <= 10_000
    assert marker == (
        f"... (diff truncated at 10 KB: {len(omitted)} of 40 files left out, "
        "listed in files_omitted)"
    )


def test_github_single_huge_file_is_cut_inside(forge: ForgeEmulator) -> None:
    """One 2 MB file and a 50 KB cap: what fits of it, and a marker saying it was cut."""
    huge = FileChange("data/huge.csv", "@@ -0,0 +1 @@\n" + "+0123456789\n" * 200_000)
    forge.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=HEAD, files=[huge])
    hydration = _github(forge, PINNED, max_diff_bytes=50_000)
    body, marker = hydration.attrs["diff"].rstrip("\n").rsplit("\n", 1)
    assert hydration.attrs["diff_truncated"] == "true"
    assert len(body.encode()) <= 50_000
    assert body.startswith("diff --git a/data/huge.csv b/data/huge.csv")
    assert marker == "... (diff truncated at 50 KB: data/huge.csv cut short)"


def test_reading_stops_at_the_limit(forge: ForgeEmulator) -> None:
    """A 2 MB answer read with a 100 KB limit: 100 KB kept, marked incomplete."""
    huge = FileChange("big.txt", "+" + "x" * 2_000_000 + "\n")
    forge.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=HEAD, files=[huge])

    async def run() -> tuple[int, bool]:
        async with httpx.AsyncClient() as http:
            answer = await fetch(
                http,
                f"{forge.github_url}/repos/octo/hello/pulls/7",
                what="diff",
                headers={"Authorization": f"Bearer {TOKEN}", "Accept": DIFF_ACCEPT},
                limit=100_000,
                timeout=10,
            )
            return len(answer.body), answer.complete

    assert asyncio.run(run()) == (100_000, False)


def test_github_diff_too_large_to_send_is_built_from_file_patches(forge: ForgeEmulator) -> None:
    """GitHub's 406 past 300 files: the diff is put together from pulls/files patches."""
    files = [*_files(320), FileChange("logo.png", "", additions=0)]
    forge.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=HEAD, files=files)
    hydration = _github(forge, PINNED, max_diff_bytes=1_000_000)
    assert hydration.error == ""
    diff = hydration.attrs["diff"]
    assert diff.count("diff --git ") == 321
    assert "--- a/src/f319.py\n+++ b/src/f319.py\n@@ -1 +1 @@\n+line 0\n" in diff
    assert diff.endswith(
        "diff --git a/logo.png b/logo.png\n(GitHub sent no patch for this "
        "file: binary, or too large)\n"
    )
    assert hydration.attrs["diff_truncated"] == "false"
    assert len(hydration.attrs["file_list"].split("\n")) == 321


def test_github_diff_too_large_and_capped_lists_the_rest(forge: ForgeEmulator) -> None:
    """Built from patches and over the cap: whole files kept, the others named."""
    forge.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=HEAD, files=_files(301, 5))
    hydration = _github(forge, PR, max_diff_bytes=20_000)
    omitted = hydration.attrs["files_omitted"].split("\n")
    assert hydration.error == ""
    assert hydration.attrs["diff_truncated"] == "true"
    assert hydration.attrs["diff"].count("diff --git ") + len(omitted) == 301
    assert omitted[-1] == "src/f300.py"


def test_github_diff_too_large_without_a_number_is_an_error(forge: ForgeEmulator) -> None:
    """No pull request number, so no file list to stand in: GitHub's 406 message."""
    forge.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=HEAD, files=_files(301))
    attrs = {"repo_owner": "octo", "repo_name": "hello", "base_sha": BASE, "head_sha": HEAD}
    hydration = _github(forge, attrs)
    _assert_failed(hydration, "answered 406: Sorry, the diff exceeded the maximum number of files")


def _rsa_key() -> tuple[str, rsa.RSAPublicKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    return pem, key.public_key()


def test_github_app_trades_a_jwt_for_an_installation_token(forge: ForgeEmulator) -> None:
    """RS256 JWT with iss = app id → POST access_tokens → the ghs_ token on every request."""
    pem, public = _rsa_key()
    forge.github_app(APP_ID, public)
    forge.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=HEAD, files=_files(1))
    hydration = _github(forge, {**PINNED, "installation_id": 99}, auth=GitHubAuth.app(APP_ID, pem))
    assert hydration.error == ""
    first, *rest = forge.requests
    assert (first.method, first.path) == ("POST", "/github/app/installations/99/access_tokens")
    app_jwt = first.headers["authorization"].removeprefix("Bearer ")
    claims = jwt.decode(app_jwt, public, algorithms=["RS256"])
    assert claims["iss"] == APP_ID
    assert claims["exp"] - claims["iat"] <= 600
    [(installation, token)] = forge.issued_tokens()
    assert installation == "99" and token.startswith("ghs_")
    assert {r.headers["authorization"] for r in rest} == {f"Bearer {token}"}


@pytest.mark.parametrize(("ttl", "token_requests"), [(3600.0, 1), (30.0, 2)])
def test_installation_tokens_are_kept_until_a_minute_before_expiry(
    ttl: float, token_requests: int
) -> None:
    """Two events, one token; unless it expires within 60 s, then a fresh one each time."""
    pem, public = _rsa_key()
    with ForgeEmulator(token_ttl=ttl) as forge:
        forge.github_app(APP_ID, public)
        forge.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=HEAD, files=_files(1))
        auth = GitHubAuth.app(APP_ID, pem)

        async def run() -> list[Hydration]:
            async with httpx.AsyncClient() as http:
                client = GitHubClient(http, api_url=forge.github_url, auth=auth)
                attrs = {**PINNED, "installation_id": 5}
                return [await client.hydrate(attrs), await client.hydrate(attrs)]

        assert [h.error for h in asyncio.run(run())] == ["", ""]
        assert len(forge.paths("POST")) == token_requests
    assert "ghs_" not in repr(auth)


def test_github_app_needs_the_installation_id(forge: ForgeEmulator) -> None:
    """No installation_id on the event: an error, and nothing asked of GitHub."""
    pem, _ = _rsa_key()
    hydration = _github(forge, PINNED, auth=GitHubAuth.app(APP_ID, pem))
    _assert_failed(hydration, "installation_id")
    assert forge.requests == []


def test_github_app_with_the_wrong_key_is_refused(forge: ForgeEmulator) -> None:
    """A JWT GitHub cannot verify: 401 and GitHub's message, not an exception."""
    pem, _ = _rsa_key()
    _, other = _rsa_key()
    forge.github_app(APP_ID, other)
    hydration = _github(forge, {**PINNED, "installation_id": 1}, auth=GitHubAuth.app(APP_ID, pem))
    _assert_failed(hydration, "answered 401: A JSON web token could not be decoded")


def test_github_app_key_that_is_no_key_is_an_error() -> None:
    """A private key that cannot sign: an error naming the setting, no key text."""
    with ForgeEmulator() as forge:
        hydration = _github(
            forge, {**PINNED, "installation_id": 1}, auth=GitHubAuth.app(APP_ID, "not a key")
        )
    _assert_failed(hydration, "cannot sign a JWT", "github.private_key")
    assert "not a key" not in hydration.error


def test_github_unknown_pull_request_is_a_404_error(forge: ForgeEmulator) -> None:
    """Not found: the forge's message in the error and diff_error; the token never."""
    hydration = _github(forge, PINNED)
    _assert_failed(hydration, f"GitHub compare octo/hello {BASE}...{HEAD} answered 404: Not Found")
    assert "pulls/7/files" not in hydration.error
    assert "GitHub pull request octo/hello#7 files (page 1) answered 404" in hydration.error


def test_github_server_error_on_the_diff_keeps_the_file_list(forge: ForgeEmulator) -> None:
    """500 on compare: diff empty with the error; the file list still arrives."""
    forge.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=HEAD, files=_files(2))
    forge.fail(r"/compare/", 500)
    hydration = _github(forge, PINNED)
    _assert_failed(hydration, "answered 500: Internal Server Error")
    assert hydration.attrs["file_list"] == "src/f000.py\nsrc/f001.py"


def test_github_bad_credentials(forge: ForgeEmulator) -> None:
    """A wrong token: 401 Bad credentials, and the wrong token is not in the message."""
    forge.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=HEAD, files=_files(1))
    wrong = "ghp_" + "W" * 36
    hydration = _github(forge, PINNED, auth=GitHubAuth.token(wrong))
    _assert_failed(hydration, "answered 401: Bad credentials")
    assert wrong not in hydration.error


def test_github_rate_limit_is_an_error_that_says_so(forge: ForgeEmulator) -> None:
    """403 with x-ratelimit-remaining 0: the message and when the limit resets."""
    forge.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=HEAD, files=_files(1))
    limited = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1700000000"}
    body = {"message": "API rate limit exceeded for user ID 1.", "documentation_url": "x"}
    forge.fail(r"/github/", 403, body=body, headers=limited, times=None)
    hydration = _github(forge, PINNED)
    _assert_failed(hydration, "answered 403: API rate limit exceeded", "rate limited until")


def test_github_timeout_is_an_error(forge: ForgeEmulator) -> None:
    """A server that does not answer in time: 'timed out', no exception."""
    forge.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=HEAD, files=_files(1))
    forge.fail(r"/compare/", 0, delay=5.0)
    hydration = _github(forge, PINNED, timeout=0.3)
    _assert_failed(hydration, "timed out after 0.3 s")


def test_github_connection_refused_is_an_error() -> None:
    """Nothing listening: 'cannot connect', no exception."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with ForgeEmulator() as forge:
        hydration = _github(forge, PINNED, api_url=f"http://127.0.0.1:{port}")
    _assert_failed(hydration, "cannot connect to 127.0.0.1:")


def test_github_event_without_a_pull_request_asks_nothing(forge: ForgeEmulator) -> None:
    """No number and no SHAs: an error, no request."""
    hydration = _github(forge, {"repo_owner": "octo", "repo_name": "hello"})
    _assert_failed(hydration, "no pull request number")
    assert forge.requests == []


# ------------------------------------------------------------------ GitLab


def test_gitlab_merge_request_diffs_are_read_page_by_page(forge: ForgeEmulator) -> None:
    """70 changes, 30 a page: X-Next-Page followed; PRIVATE-TOKEN sent; path URL-encoded."""
    forge.add_merge_request("grp/sub/proj", 3, base_sha=BASE, head_sha=HEAD, files=_files(70))
    attrs = {"repo_owner": "grp", "repo_name": "sub/proj", "number": 3}
    hydration = _gitlab(forge, attrs)
    assert hydration.error == ""
    diffs = "/gitlab/api/v4/projects/grp%2Fsub%2Fproj/merge_requests/3/diffs"
    assert [r.path for r in forge.requests] == [diffs] * 3
    assert [r.query["page"] for r in forge.requests] == ["1", "2", "3"]
    assert {r.headers["private-token"] for r in forge.requests} == {GL_TOKEN}
    assert hydration.attrs["file_list"].split("\n") == [f"src/f{i:03d}.py" for i in range(70)]
    assert hydration.attrs["diff"].count("diff --git a/") == 70
    assert "--- a/src/f069.py\n+++ b/src/f069.py\n@@ -1 +1 @@\n" in hydration.attrs["diff"]


def test_gitlab_with_both_shas_uses_compare_from_the_merge_base(forge: ForgeEmulator) -> None:
    """project_id and SHAs: /repository/compare?from=base&to=head&straight=false."""
    project = forge.add_merge_request("grp/proj", 3, base_sha=BASE, head_sha=HEAD, files=_files(2))
    hydration = _gitlab(
        forge, {"project_id": project, "number": 3, "base_sha": BASE, "head_sha": HEAD}
    )
    assert hydration.error == ""
    [request] = forge.requests
    assert request.path == f"/gitlab/api/v4/projects/{project}/repository/compare"
    assert request.query == {"from": BASE, "to": HEAD, "straight": "false"}
    assert hydration.attrs["file_list"] == "src/f000.py\nsrc/f001.py"


def test_gitlab_new_deleted_and_renamed_files_read_as_git_diff(forge: ForgeEmulator) -> None:
    """Each change gets git's header lines for what happened to it."""
    files = [
        FileChange("new.py", "@@ -0,0 +1 @@\n+a\n", status="added"),
        FileChange("gone.py", "@@ -1 +0,0 @@\n-a\n", status="removed"),
        FileChange("after.py", "", status="renamed", previous_filename="before.py"),
    ]
    forge.add_merge_request("grp/proj", 3, base_sha=BASE, head_sha=HEAD, files=files)
    diff = _gitlab(forge, {"repo_owner": "grp", "repo_name": "proj", "number": 3}).attrs["diff"]
    assert (
        "diff --git a/new.py b/new.py\nnew file mode 100644\n--- /dev/null\n+++ b/new.py\n" in diff
    )
    assert "deleted file mode 100644\n--- a/gone.py\n+++ /dev/null\n" in diff
    assert diff.endswith(
        "diff --git a/before.py b/after.py\nrename from before.py\nrename to after.py\n"
    )


def test_gitlab_truncation_names_files_past_the_read_limit(forge: ForgeEmulator) -> None:
    """A small cap: files past it are listed as omitted, file_list stays whole."""
    forge.add_merge_request("grp/proj", 3, base_sha=BASE, head_sha=HEAD, files=_files(60, 50))
    attrs = {"repo_owner": "grp", "repo_name": "proj", "number": 3}
    hydration = _gitlab(forge, attrs, max_diff_bytes=5_000)
    omitted = hydration.attrs["files_omitted"].split("\n")
    assert hydration.attrs["diff_truncated"] == "true"
    assert hydration.attrs["diff"].count("diff --git ") + len(omitted) == 60
    assert omitted[-1] == "src/f059.py"
    assert len(hydration.attrs["file_list"].split("\n")) == 60


def test_gitlab_wrong_token_is_a_401_error(forge: ForgeEmulator) -> None:
    """GitLab's own message; the token not shown."""
    forge.add_merge_request("grp/proj", 3, base_sha=BASE, head_sha=HEAD, files=_files(1))
    wrong = "glpat-" + "W" * 20
    hydration = _gitlab(forge, {"repo_owner": "grp", "repo_name": "proj", "number": 3}, token=wrong)
    _assert_failed(hydration, "answered 401: 401 Unauthorized")
    assert wrong not in hydration.error


def test_gitlab_unknown_project_and_failed_page(forge: ForgeEmulator) -> None:
    """404 for an unknown project; a 502 on page 2 fails the whole diff, not half of it."""
    missing = _gitlab(forge, {"project_id": 4242, "number": 1})
    _assert_failed(missing, "answered 404: 404 Project Not Found")
    forge.add_merge_request("grp/proj", 3, base_sha=BASE, head_sha=HEAD, files=_files(45))
    forge.fail(r"/diffs$", 502, times=None)
    broken = _gitlab(forge, {"repo_owner": "grp", "repo_name": "proj", "number": 3})
    _assert_failed(broken, "GitLab merge request grp/proj!3 diffs (page 1) answered 502")


def test_gitlab_timeout_is_an_error(forge: ForgeEmulator) -> None:
    """A hung GitLab: 'timed out', no exception."""
    forge.add_merge_request("grp/proj", 3, base_sha=BASE, head_sha=HEAD, files=_files(1))
    forge.fail(r"/gitlab/", 0, delay=5.0)
    hydration = _gitlab(forge, {"project_id": 1001, "number": 3}, timeout=0.3)
    _assert_failed(hydration, "timed out after 0.3 s")


# ------------------------------------------------------------------ the emulator's wire formats


def test_emulator_speaks_github_json_link_and_error_shapes(forge: ForgeEmulator) -> None:
    """compare JSON with files[], Link with next and last, 401 without a token."""
    forge.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=HEAD, files=_files(5))
    auth = {"Authorization": f"token {TOKEN}"}
    with httpx.Client(base_url=forge.github_url) as http:
        compare = http.get(f"/repos/octo/hello/compare/{BASE}...{HEAD}", headers=auth).json()
        files = http.get("/repos/octo/hello/pulls/7/files?per_page=2", headers=auth)
        denied = http.get("/repos/octo/hello/pulls/7")
    assert [item["filename"] for item in compare["files"]][:2] == ["src/f000.py", "src/f001.py"]
    assert files.headers["link"] == (
        f'<{forge.github_url}/repos/octo/hello/pulls/7/files?per_page=2&page=2>; rel="next", '
        f'<{forge.github_url}/repos/octo/hello/pulls/7/files?per_page=2&page=3>; rel="last"'
    )
    assert denied.status_code == 401
    assert denied.json()["message"] == "Bad credentials"


def test_emulator_speaks_gitlab_pagination_headers(forge: ForgeEmulator) -> None:
    """X-Page, X-Next-Page, X-Total-Pages and a merge request with diff_refs."""
    project = forge.add_merge_request("grp/proj", 3, base_sha=BASE, head_sha=HEAD, files=_files(5))
    token = {"PRIVATE-TOKEN": GL_TOKEN}
    with httpx.Client(base_url=f"{forge.gitlab_url}/api/v4") as http:
        page = http.get(
            f"/projects/{project}/merge_requests/3/diffs?per_page=2&page=3", headers=token
        )
        request = http.get("/projects/grp%2Fproj/merge_requests/3", headers=token).json()
        denied = http.get(f"/projects/{project}/merge_requests/3")
    assert (page.headers["x-page"], page.headers["x-next-page"]) == ("3", "")
    assert (page.headers["x-total"], page.headers["x-total-pages"]) == ("5", "3")
    assert 'rel="prev"' in page.headers["link"] and 'rel="next"' not in page.headers["link"]
    assert request["diff_refs"] == {"base_sha": BASE, "head_sha": HEAD, "start_sha": BASE}
    assert denied.json() == {"message": "401 Unauthorized"}
