"""The forge emulator's commits over HTTP: a pull/merge request whose head moves, a
force-push, and what GitHub's compare and GitLab's compare and merge base answer for them
(their wire formats: GitHub's REST docs, GitLab's lib/api/repositories.rb)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from mecha.testing.forge.api import FileChange, ForgeEmulator

TOKEN = "ghp_" + "C" * 36
GL_TOKEN = "glpat-" + "C" * 20
GH = {"Authorization": f"Bearer {TOKEN}"}
GL = {"PRIVATE-TOKEN": GL_TOKEN}
DIFF = {**GH, "Accept": "application/vnd.github.diff"}
BASE, H1, H2, H3 = "10" * 20, "a1" * 20, "b2" * 20, "c3" * 20
A = FileChange("a.py", "@@ -1 +1 @@\n-a\n+A\n", additions=1, deletions=1)
B = FileChange("b.py", "@@ -0,0 +1 @@\n+b\n", status="added", additions=1)
A2 = FileChange("a.py", "@@ -1 +1 @@\n-a\n+AA\n", additions=1, deletions=1)
C = FileChange("c.py", "@@ -0,0 +1 @@\n+c\n", status="added", additions=1)


@pytest.fixture
def forge() -> Iterator[ForgeEmulator]:
    with ForgeEmulator(github_token=TOKEN, gitlab_token=GL_TOKEN) as emulator:
        emulator.add_pull("octo", "hello", 7, base_sha=BASE, head_sha=H1, files=[A])
        emulator.add_merge_request("group/app", 7, base_sha=BASE, head_sha=H1, files=[A],
                                   project_id=12)  # fmt: skip
        yield emulator


def compare(forge: ForgeEmulator, base: str, head: str, **headers: str) -> httpx.Response:
    url = f"{forge.github_url}/repos/octo/hello/compare/{base}...{head}"
    return httpx.get(url, headers={**GH, **headers})


def gitlab(forge: ForgeEmulator, what: str, **params: str | list[str]) -> httpx.Response:
    url = f"{forge.gitlab_url}/api/v4/projects/12/repository/{what}"
    return httpx.get(url, params=params, headers=GL)


# ------------------------------------------------------------------ GitHub


def test_a_push_puts_a_commit_on_the_head(forge: ForgeEmulator) -> None:
    forge.push_pull("octo", "hello", 7, head_sha=H2, files=[B])
    since = compare(forge, H1, H2).json()
    assert (since["status"], since["ahead_by"], since["behind_by"]) == ("ahead", 1, 0)
    assert since["merge_base_commit"]["sha"] == since["base_commit"]["sha"] == H1
    assert [c["sha"] for c in since["commits"]] == [H2]
    assert [f["filename"] for f in since["files"]] == ["b.py"]
    diff = compare(forge, H1, H2, Accept="application/vnd.github.diff")
    assert diff.text.startswith("diff --git a/b.py b/b.py\nnew file mode 100644\n")
    assert "a.py" not in diff.text
    # the whole pull request, base to the new head: a.py and b.py
    whole = compare(forge, BASE, H2).json()
    assert [f["filename"] for f in whole["files"]] == ["a.py", "b.py"]
    pull = httpx.get(f"{forge.github_url}/repos/octo/hello/pulls/7", headers=GH).json()
    assert pull["head"]["sha"] == H2


def test_a_file_changed_again_shows_as_the_last_commit_left_it(forge: ForgeEmulator) -> None:
    forge.push_pull("octo", "hello", 7, head_sha=H2, files=[A2, B])
    whole = compare(forge, BASE, H2).json()
    assert [(f["filename"], f["patch"]) for f in whole["files"]] == [
        ("a.py", A2.patch), ("b.py", B.patch),
    ]  # fmt: skip


def test_identical_and_behind(forge: ForgeEmulator) -> None:
    forge.push_pull("octo", "hello", 7, head_sha=H2, files=[B])
    same = compare(forge, H2, H2).json()
    assert (same["status"], same["ahead_by"], same["files"]) == ("identical", 0, [])
    back = compare(forge, H2, H1).json()
    assert (back["status"], back["ahead_by"], back["behind_by"]) == ("behind", 0, 1)


def test_a_force_push_diverges_from_the_old_head(forge: ForgeEmulator) -> None:
    forge.push_pull("octo", "hello", 7, head_sha=H2, files=[C], force=True)
    since = compare(forge, H1, H2).json()
    assert (since["status"], since["ahead_by"], since["behind_by"]) == ("diverged", 1, 1)
    assert since["merge_base_commit"]["sha"] == BASE
    whole = compare(forge, BASE, H2, Accept="application/vnd.github.diff").text
    assert "c.py" in whole and "a.py" not in whole  # the rewritten branch has only c.py


def test_a_forgotten_commit_and_unrelated_histories_are_404(forge: ForgeEmulator) -> None:
    forge.push_pull("octo", "hello", 7, head_sha=H2, files=[C], force=True, forget_old=True)
    gone = compare(forge, H1, H2)
    assert (gone.status_code, gone.json()["message"]) == (404, "Not Found")
    forge.add_pull("octo", "hello", 8, base_sha="99" * 20, head_sha=H3, files=[B])
    apart = compare(forge, H2, H3)
    assert apart.status_code == 404
    assert apart.json()["message"] == f"No common ancestor between {H2} and {H3}."
    assert compare(forge, BASE, H2).status_code == 200  # the base and the new head stay


# ------------------------------------------------------------------ GitLab


def test_gitlab_compare_after_a_push_and_the_merge_base(forge: ForgeEmulator) -> None:
    forge.push_merge_request("group/app", 7, head_sha=H2, files=[B])
    since = gitlab(forge, "compare", **{"from": H1, "to": H2, "straight": "false"}).json()
    assert [d["new_path"] for d in since["diffs"]] == ["b.py"]
    assert since["diffs"][0]["new_file"] is True
    assert [c["id"] for c in since["commits"]] == [H2] and since["commit"]["id"] == H2
    assert (since["compare_timeout"], since["compare_same_ref"]) == (False, False)
    base = gitlab(forge, "merge_base", **{"refs[]": [H1, H2]})
    assert base.status_code == 200 and base.json()["id"] == H1
    assert base.json()["parent_ids"] == [BASE]
    assert gitlab(forge, "merge_base", refs=f"{H2},{H1}").json()["id"] == H1  # comma form
    request = httpx.get(f"{forge.gitlab_url}/api/v4/projects/12/merge_requests/7", headers=GL)
    assert request.json()["diff_refs"]["head_sha"] == H2


def test_gitlab_after_a_force_push(forge: ForgeEmulator) -> None:
    forge.push_merge_request("group/app", 7, head_sha=H2, files=[C], force=True)
    base = gitlab(forge, "merge_base", **{"refs[]": [H1, H2]}).json()
    assert base["id"] == BASE  # the old head is no ancestor of the new one any more
    since = gitlab(forge, "compare", **{"from": H1, "to": H2}).json()
    assert [d["new_path"] for d in since["diffs"]] == ["c.py"]  # from the merge base


def test_gitlab_errors_as_its_api_answers_them(forge: ForgeEmulator) -> None:
    forge.push_merge_request("group/app", 7, head_sha=H2, files=[C], force=True,
                             forget_old=True)  # fmt: skip
    gone = gitlab(forge, "compare", **{"from": H1, "to": H2})
    assert (gone.status_code, gone.json()) == (404, {"message": "404 Ref Not Found"})
    lost = gitlab(forge, "merge_base", **{"refs[]": [H1, H2]})
    assert (lost.status_code, lost.json()) == (400, {"message": f"Could not find ref: {H1}"})
    both = gitlab(forge, "merge_base", **{"refs[]": [H1, H3]})
    assert both.json() == {"message": f"Could not find refs: {H1}, {H3}"}
    one = gitlab(forge, "merge_base", **{"refs[]": [H2]})
    assert (one.status_code, one.json()) == (400, {"message": "Provide at least 2 refs"})
    forge.add_merge_request("group/app", 8, base_sha="99" * 20, head_sha=H3, files=[B])
    apart = gitlab(forge, "merge_base", **{"refs[]": [H2, H3]})
    assert (apart.status_code, apart.json()) == (404, {"message": "404 Merge Base Not Found"})
