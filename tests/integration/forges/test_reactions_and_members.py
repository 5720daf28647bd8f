"""The forge clients for issue 17's noise controls against the forge emulator: 👀 reactions
(GitHubWriter over REST and GraphQL, GitLabWriter's award emoji), each safe to make twice,
and the GitLab members API lookup trust asks for (``author_access``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest

from mecha.forges.github.auth import GitHubAuth
from mecha.forges.github.reactions import graphql_url
from mecha.forges.github.write import GitHubWriter
from mecha.forges.gitlab.members import author_access
from mecha.forges.gitlab.write import GitLabWriter
from mecha.forges.writer import Done, WriteFailure
from mecha.policy.writes import Place, Write
from mecha.testing.forge.api import ForgeEmulator
from mecha.testing.forge.gitlab.members import user_id

GH_TOKEN, GL_TOKEN = "ghp_" + "X" * 36, "glpat-" + "Y" * 20
BASE, HEAD = "1a" * 20, "2b" * 20
GH_PLACE = Place(forge="github", repo="octo/hello", number=7, kind="pull", head_sha=HEAD)
GL_PLACE = Place(forge="gitlab", repo="group/app", project_id="12", number=5, kind="pull")


@pytest.fixture
def forge() -> Iterator[ForgeEmulator]:
    with ForgeEmulator(github_token=GH_TOKEN, gitlab_token=GL_TOKEN) as emulator:
        emulator.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=HEAD)
        emulator.add_merge_request("group/app", 5, base_sha=BASE, head_sha=HEAD, project_id=12)
        yield emulator


def reaction(place: Place, subject: str) -> Write:
    return Write(key="c" * 32, worker="w", action="reaction", place=place, body="eyes",
                 subject=subject)  # fmt: skip


def github_twice(forge: ForgeEmulator, write: Write) -> list[Done | WriteFailure]:
    async def main() -> list[Done | WriteFailure]:
        async with httpx.AsyncClient(trust_env=False) as http:
            writer = GitHubWriter(http, api_url=forge.github_url, auth=GitHubAuth.token(GH_TOKEN))
            found: list[Done | WriteFailure] = []
            for uncertain in (False, True):
                try:
                    found.append(await writer.write(write, uncertain=uncertain))
                except WriteFailure as failure:
                    found.append(failure)
            return found

    return asyncio.run(main())


def test_github_reacts_to_a_comment_once_however_often_asked(forge: ForgeEmulator) -> None:
    number = forge.github.writes.add_comment("octo", "hello", 7, "/review", login="mona")
    write = reaction(GH_PLACE, f"issue_comment:{number}")
    first, second = github_twice(forge, write)
    assert isinstance(first, Done) and first.detail == f"reaction eyes on issue comment {number}"
    assert isinstance(second, Done)  # GitHub's 200: the one we made
    assert forge.github.reactions.reactions("issue_comment", number) == [("mecha-bot", "eyes")]
    [post, _] = [r for r in forge.requests if r.method == "POST"]
    assert post.path == f"/github/repos/octo/hello/issues/comments/{number}/reactions"
    assert json.loads(post.body) == {"content": "eyes"}


def test_github_reacts_to_a_review_through_graphql(forge: ForgeEmulator) -> None:
    review = forge.github.reactions.add_review("octo", "hello", 7, "/review", login="mona")
    first, second = github_twice(forge, reaction(GH_PLACE, f"review:PRR_{review.id}"))
    assert isinstance(first, Done) and isinstance(second, Done)
    assert forge.github.reactions.reactions("review", review.id) == [("mecha-bot", "eyes")]
    sent = json.loads(next(r.body for r in forge.requests if r.path == "/github/graphql"))
    assert "addReaction(input: {subjectId: $subject, content: $content})" in sent["query"]
    assert sent["variables"] == {"subject": f"PRR_{review.id}", "content": "EYES"}


def test_a_graphql_refusal_fails_the_reaction_for_good(forge: ForgeEmulator) -> None:
    failure, _ = github_twice(forge, reaction(GH_PLACE, "review:PRR_404"))
    assert isinstance(failure, WriteFailure) and not failure.transient
    assert "Could not resolve to a node with the global id of 'PRR_404'" in failure.message


def test_the_graphql_endpoint_sits_beside_the_rest_api() -> None:
    assert graphql_url("https://api.github.com") == "https://api.github.com"
    assert graphql_url("https://ghe.example/api/v3/") == "https://ghe.example/api"


def test_previews_name_the_requests() -> None:
    async def main() -> tuple[str, str, str]:
        async with httpx.AsyncClient(trust_env=False) as http:
            github = GitHubWriter(http, api_url="https://api.github.com",
                                  auth=GitHubAuth.token(""))  # fmt: skip
            gitlab = GitLabWriter(http, base_url="https://gitlab.example", token="")
            return (github.preview(reaction(GH_PLACE, "review_comment:5")),
                    github.preview(reaction(GH_PLACE, "review:PRR_9")),
                    gitlab.preview(reaction(GL_PLACE, "note:77")))  # fmt: skip

    assert asyncio.run(main()) == (
        "POST /repos/octo/hello/pulls/comments/5/reactions (eyes)",
        "POST /graphql addReaction EYES on review PRR_9",
        "POST /projects/12/merge_requests/5/notes/77/award_emoji name=eyes",
    )


def test_gitlab_awards_an_emoji_once_and_counts_its_own_as_done(forge: ForgeEmulator) -> None:
    note_id = forge.gitlab.add_note(12, 5, "/review", author="dev")

    async def main() -> list[Done | WriteFailure]:
        async with httpx.AsyncClient(trust_env=False) as http:
            writer = GitLabWriter(http, base_url=forge.gitlab_url, token=GL_TOKEN)
            found: list[Done | WriteFailure] = []
            for subject in (f"note:{note_id}", f"note:{note_id}", "note:999999"):
                try:
                    found.append(await writer.write(reaction(GL_PLACE, subject)))
                except WriteFailure as failure:
                    found.append(failure)
            return found

    made, again, missing = asyncio.run(main())
    assert isinstance(made, Done) and made.detail == (
        f"award emoji eyes on note {note_id} of group/app!5"
    )
    assert isinstance(again, Done) and again.detail.endswith("was given before")
    assert isinstance(missing, WriteFailure) and not missing.transient
    assert "404 Note Not Found" in missing.message
    assert forge.gitlab.people.awarded(12, note_id) == [("mecha-bot", "eyes")]


def lookup(forge: ForgeEmulator, **attrs: object) -> dict[str, object]:
    async def main() -> dict[str, object]:
        async with httpx.AsyncClient(trust_env=False) as http:
            api = forge.gitlab_url + "/api/v4"
            found = {"project_id": 12, **attrs}
            return await author_access(http, api_url=api, token=GL_TOKEN, attrs=found)

    return asyncio.run(main())


def test_the_members_api_gives_the_note_authors_access_level(forge: ForgeEmulator) -> None:
    forge.gitlab.people.add_member(12, "dev", 30)
    assert lookup(forge, comment_author_id=user_id("dev")) == {"author_access_level": 30}
    assert lookup(forge, comment_author_id=user_id("stranger")) == {"author_access_level": 0}
    [asked, _] = forge.requests
    assert asked.path == f"/gitlab/api/v4/projects/12/members/all/{user_id('dev')}"
    assert asked.headers["private-token"] == GL_TOKEN


def test_a_lookup_that_fails_says_why_without_the_token(forge: ForgeEmulator) -> None:
    forge.fail(r"/members/all/", 503, times=1)  # a blip: the second try answers
    forge.gitlab.people.add_member(12, "dev", 30)
    assert lookup(forge, comment_author_id=user_id("dev")) == {"author_access_level": 30}
    forge.fail(r"/members/all/", 401, times=None, body={"message": f"401 bad {GL_TOKEN}"})
    found = lookup(forge, comment_author_id=user_id("dev"))
    error = str(found["author_access_error"])
    assert "members/all" in error and "401" in error and GL_TOKEN not in error
    assert lookup(forge) == {"author_access_error": "the note's payload has no "
                             "object_attributes.author_id"}  # fmt: skip
