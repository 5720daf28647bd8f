"""Redaction: known values and token shapes masked in text and in log records."""

from __future__ import annotations

import io
import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mecha.redaction import (
    _PATTERN,
    _REPLACEMENT,
    REDACTED,
    TOKEN_PREFIXES,
    RedactingFilter,
    Redactor,
)

ALNUM = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
PLAIN = "worker review-bot took task 42 for event github:push (skipped: no match)"


@pytest.mark.parametrize(
    "token",
    [
        "sk-ant-oat01-Abc_DEF-123",
        "sk-ant-api03-Zz9",
        "sk-" + ALNUM[:20],
        "sk-proj-" + ALNUM,
        "ghp_" + ALNUM,
        "ghs_" + ALNUM,
        "ghr_" + ALNUM,
        "gho_" + ALNUM,
        "ghu_" + ALNUM,
        "ghes_" + ALNUM,
        "github_pat_11ABCDEFG_" + ALNUM,
        "AIza" + ALNUM[:30],
        "ya29.a0AfH6SM-x_y.c.Zz9",
        "glpat-" + ALNUM[:20],
        "gloas-" + ALNUM,
        "glrt-" + ALNUM,
        "gldt-" + ALNUM,
        "xoxb-1234-5678-" + ALNUM,
        "xoxp-1234-5678-" + ALNUM,
    ],
)
def test_known_token_shape_is_masked(token: str) -> None:
    """Each token shape of §15 (and GitLab's and Slack's) is masked whole, in a sentence."""
    assert Redactor().redact(f"used {token} here.") == f"used {REDACTED} here."


@pytest.mark.parametrize("text", ["sk-" + ALNUM[:19], "AIza" + ALNUM[:29], "ghp_", "glpat-"])
def test_too_short_for_a_shape_is_kept(text: str) -> None:
    """sk- needs 20 more characters, AIza 30; a bare prefix is just a word."""
    assert Redactor().redact(f"see {text} now") == f"see {text} now"


@pytest.mark.parametrize("text", ["task-ant-runner", "mask-" + ALNUM, "flagship_" + ALNUM])
def test_shape_inside_a_longer_word_is_kept(text: str) -> None:
    """A prefix that is the tail of another word (task-ant-, mask-…) is not a token."""
    assert Redactor().redact(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln==", "Authorization: Bearer "),
        ("authorization: bearer abc123/x+y~z", "authorization: bearer "),
    ],
)
def test_bearer_token_is_masked_keeping_the_word(text: str, expected: str) -> None:
    """``Bearer <token>`` keeps the scheme word and masks the token."""
    assert Redactor().redact(text) == expected + REDACTED


def test_token_after_an_equals_sign_is_masked() -> None:
    """Tokens in query strings and assignments are found."""
    text = f"GET /?access_token=ghp_{ALNUM}&page=2 OPENAI_API_KEY=sk-{ALNUM}"
    expected = f"GET /?access_token={REDACTED}&page=2 OPENAI_API_KEY={REDACTED}"
    assert Redactor().redact(text) == expected


def test_plain_text_is_unchanged() -> None:
    """Ordinary log text passes through as it is."""
    assert Redactor(["hunter2-password"]).redact(PLAIN) == PLAIN


def test_given_values_are_masked_everywhere() -> None:
    """Each occurrence of a given value is masked, whatever its shape."""
    redactor = Redactor(["hunter2-password", "hook:secret/7"])
    text = "pw=hunter2-password, again hunter2-password; hook hook:secret/7"
    assert redactor.redact(text) == f"pw={REDACTED}, again {REDACTED}; hook {REDACTED}"


def test_values_shorter_than_four_are_ignored() -> None:
    """Short values would mask ordinary words, so they are left alone."""
    assert Redactor(["abc", ""]).redact("abc abcd") == "abc abcd"


def test_longest_value_is_masked_first() -> None:
    """A value that contains another is masked whole, not around the shorter one."""
    redactor = Redactor(["pass1234", "pass1234-extended"])
    assert redactor.redact("a pass1234-extended b pass1234") == f"a {REDACTED} b {REDACTED}"


def test_value_inside_the_mask_word_is_not_masked_again() -> None:
    """A later value that occurs in "[REDACTED]" does not break an earlier mask."""
    redactor = Redactor(["longer-secret", "EDAC"])
    assert redactor.redact("x longer-secret EDAC") == f"x {REDACTED} {REDACTED}"


def test_value_after_bearer_is_masked_once() -> None:
    """A known value used as a bearer token is masked once, keeping the word."""
    assert Redactor(["my-own-token"]).redact("Bearer my-own-token") == f"Bearer {REDACTED}"


def test_redacting_twice_changes_nothing_more() -> None:
    """Redacted text is stable: masks are not masked again."""
    redactor = Redactor(["hunter2-password"])
    once = redactor.redact(f"Bearer {ALNUM} sk-ant-x1 hunter2-password ghp_{ALNUM}")
    assert redactor.redact(once) == once


def test_with_values_returns_a_new_redactor() -> None:
    """with_values adds values to a copy; the original masks what it did before."""
    first = Redactor(["first-secret"])
    second = first.with_values(["second-secret"])
    text = "first-secret second-secret"
    assert first.redact(text) == f"{REDACTED} second-secret"
    assert second.redact(text) == f"{REDACTED} {REDACTED}"


def test_redactor_cannot_be_changed() -> None:
    """A Redactor has no attribute one can set."""
    redactor = Redactor(["first-secret"])
    with pytest.raises(AttributeError):
        redactor._values = ()
    assert redactor.redact("first-secret") == REDACTED


def test_repr_shows_no_values() -> None:
    """A Redactor printed in a log gives away only how many values it has."""
    assert repr(Redactor(["first-secret", "second-secret"])) == "Redactor(2 values)"


def test_redacting_10kb_with_50_values_is_fast() -> None:
    """Prints the mean time per call; checks every embedded value was masked."""
    values = [secrets.token_urlsafe(24) for _ in range(50)]
    redactor = Redactor(values)
    quiet = ((PLAIN + " ") * 200)[:10240]
    noisy = quiet[:5000] + " ".join(values[:5]) + f" Bearer {ALNUM} " + quiet[5000:9800]
    for name, text in (("no secrets", quiet), ("6 secrets", noisy)):
        calls = 300
        start = time.perf_counter()
        for _ in range(calls):
            result = redactor.redact(text)
        mean_ms = (time.perf_counter() - start) / calls * 1000
        print(f"redact {len(text)} chars, 50 values, {name}: {mean_ms:.3f} ms per call")
        assert not any(value in result for value in values)
    assert redactor.redact(noisy).count(REDACTED) == 6


@dataclass
class Logged:
    """A logger whose one handler writes through a RedactingFilter into a string."""

    logger: logging.Logger
    stream: io.StringIO
    filter: RedactingFilter


@pytest.fixture
def logged(request: pytest.FixtureRequest) -> Iterator[Logged]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    redacting = RedactingFilter(Redactor(["hunter2-password"]))
    handler.addFilter(redacting)
    logger = logging.getLogger(f"mecha.test.{request.node.name}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)
    yield Logged(logger, stream, redacting)
    logger.removeHandler(handler)


def test_log_message_is_redacted(logged: Logged) -> None:
    """A value written straight into the message is masked in the output."""
    logged.logger.warning("login with hunter2-password failed")
    assert logged.stream.getvalue() == f"WARNING login with {REDACTED} failed\n"


def test_log_percent_args_are_redacted(logged: Logged) -> None:
    """%-style arguments are merged into the message, then masked."""
    logged.logger.info("token %s for %s, try %d", f"ghp_{ALNUM}", "octo", 2)
    assert logged.stream.getvalue() == f"INFO token {REDACTED} for octo, try 2\n"


def test_log_mapping_args_are_redacted(logged: Logged) -> None:
    """%(name)s arguments from a mapping are merged and masked too."""
    logged.logger.info("key %(key)s", {"key": "hunter2-password"})
    assert logged.stream.getvalue() == f"INFO key {REDACTED}\n"


def test_log_traceback_is_redacted(logged: Logged) -> None:
    """The exception text in a logged traceback is masked."""
    try:
        raise ValueError(f"bad header Bearer {ALNUM}")
    except ValueError:
        logged.logger.exception("request failed")
    output = logged.stream.getvalue()
    assert "Traceback" in output
    assert f"ValueError: bad header Bearer {REDACTED}" in output
    assert ALNUM not in output


def test_log_with_args_that_do_not_fit_is_kept_and_redacted(logged: Logged) -> None:
    """A format/args mismatch does not raise from the filter; the text is still masked."""
    logged.logger.info("only %s here", "hunter2-password", "extra")  # noqa: PLE1205 - on purpose
    output = logged.stream.getvalue()
    assert output.startswith("INFO only %s here (")
    assert "hunter2-password" not in output


def test_filter_redactor_can_be_replaced(logged: Logged) -> None:
    """Swapping the redactor (e.g. after a secrets reload) masks the new values."""
    logged.filter.redactor = Redactor(["reloaded-secret"])
    logged.logger.info("reloaded-secret and hunter2-password")
    assert logged.stream.getvalue() == f"INFO {REDACTED} and hunter2-password\n"


def test_filter_redacts_exc_text_already_formatted() -> None:
    """A record whose traceback text was already set has it masked as well."""
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom %s", ("a",), None)
    record.exc_text = "Traceback ...\nRuntimeError: hunter2-password"
    assert RedactingFilter(Redactor(["hunter2-password"])).filter(record) is True
    assert (record.msg, record.args) == ("boom a", ())
    assert record.exc_text == f"Traceback ...\nRuntimeError: {REDACTED}"


_STARTS = [*TOKEN_PREFIXES, "Bearer ", "bearer\t", "earer", "gh", "gl", "xox", "ya29", "AIz"]
_PIECES = st.one_of(
    st.sampled_from([*_STARTS, "-", "_", ".", " ", "\n", "task-", "desk-"]),
    st.from_regex(r"[A-Za-z0-9_\-]{1,40}", fullmatch=True),
    st.tuples(
        st.sampled_from(_STARTS), st.from_regex(r"[A-Za-z0-9_\-.]{1,40}", fullmatch=True)
    ).map("".join),
)


@given(st.lists(_PIECES, max_size=8).map("".join))
def test_the_quick_look_for_clues_never_skips_a_shape(text: str) -> None:
    """A text is scanned by the shapes' pattern only if it holds a clue; none is missed."""
    assert Redactor().redact(text) == _PATTERN.sub(_REPLACEMENT, text)


@pytest.mark.parametrize("start", [*TOKEN_PREFIXES, "Bearer ", "bearer\t"])
def test_every_shape_has_a_clue(start: str) -> None:
    text = f"see {start}abcdefghijklmnopqrstuvwxyz0123456789ABCDEF here"
    assert Redactor().redact(text) == _PATTERN.sub(_REPLACEMENT, text)
    assert REDACTED in Redactor().redact(text)
