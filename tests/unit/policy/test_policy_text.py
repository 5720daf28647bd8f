"""The policy's text sanitisers: hidden text, links, mentions, closing references, truncation."""

from __future__ import annotations

import pytest

from mecha.policy.text import (
    SUFFIX,
    Hidden,
    TextRules,
    clean_code,
    clean_prose,
    link_host,
    neutralize_mentions,
    neutralize_references,
    redact_links,
    strip_hidden,
    truncate,
)

GITHUB = ("github.com",)

# ------------------------------------------------------------------ strip_hidden


@pytest.mark.parametrize(
    ("text", "clean", "hidden"),
    [
        ("a<!-- secret -->b", "ab", Hidden(comments=1)),
        ("a<!--\nmulti\nline\n-->b", "ab", Hidden(comments=1)),
        ("keep <!-- unterminated\nto the end", "keep ", Hidden(comments=1)),
        ("<!-- a <!-- b --> c -->", " c -->", Hidden(comments=1)),
        ("x<!<!-- -->-- hidden", "x", Hidden(comments=2)),
        ("<!---->visible<!-- -- -->", "visible", Hidden(comments=2)),
        ("zero\u200bwidth\u200c\u200d\u2060\ufeff\u180e", "zerowidth", Hidden(invisible=6)),
        ("bidi\u202e\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069", "bidi", Hidden(invisible=9)),
        ("marks\u200e\u200f\u061c", "marks", Hidden(invisible=3)),
        ("tag\U000e0041\U000e0042s", "tags", Hidden(invisible=2)),
        ("\x1b[31mred\x1b[0m", "red", Hidden(escapes=2)),
        ("\x1b[38;5;196mcolour\x1b[K", "colour", Hidden(escapes=2)),
        ("\x1b]8;;https://evil.example\x07link\x1b]8;;\x1b\\", "link", Hidden(escapes=2)),
        ("\x1b]0;title without end\nnext", "\nnext", Hidden(escapes=1)),
        ("reset\x1bc", "reset", Hidden(escapes=1)),
        ("bell\x07back\x08nul\x00del\x7fcsi\x9b", "bellbacknuldelcsi", Hidden(controls=5)),
        ("over\rwrite", "overwrite", Hidden(controls=1)),
    ],
)
def test_strip_hidden_removes_what_a_reader_cannot_see(
    text: str, clean: str, hidden: Hidden
) -> None:
    """HTML comments (also unterminated, also re-formed), invisible characters, escapes."""
    assert strip_hidden(text) == (clean, hidden)


def test_strip_hidden_keeps_lines_tabs_and_crlf() -> None:
    """Newlines, tabs and CRLF line ends are text, not hidden content."""
    text = "a\tb\r\nc\nd"
    assert strip_hidden(text) == (text, Hidden())
    assert not Hidden()


def test_strip_hidden_joins_an_invisible_split_comment_opener() -> None:
    """``<\\u200b!--`` becomes ``<!--`` once the invisible character goes; it is removed too."""
    assert strip_hidden("a<\u200b!-- hidden -->b") == ("ab", Hidden(comments=1, invisible=1))


def test_strip_hidden_without_html_keeps_comments() -> None:
    """For code, HTML comments are content; invisible characters and escapes still go."""
    text = "<!-- keep -->\u200b\x1b[1m"
    assert strip_hidden(text, html=False) == ("<!-- keep -->", Hidden(invisible=1, escapes=1))


def test_hidden_describes_what_was_found() -> None:
    """Counts with plurals, only the kinds found."""
    assert str(Hidden(comments=1, invisible=3)) == "1 HTML comment, 3 invisible characters"
    assert str(Hidden(escapes=2, controls=1)) == "2 escape sequences, 1 control character"


# ------------------------------------------------------------------ links


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://github.com/x", "github.com"),
        ("HTTPS://API.GitHub.COM/x", "api.github.com"),
        ("https://github.com@evil.example/", "evil.example"),
        ("https://user:pw@github.com:443/x", "github.com"),
        ("https://evil.example\\@github.com", "evil.example"),
        ("https://github.com.:8080", "github.com"),
        ("www.example.org/page", "www.example.org"),
        ("//evil.example/x", "evil.example"),
        ("http://[::1]:80/", "[::1]"),
        ("https://evil.example?q=@github.com", "evil.example"),
        ("https://evil.example#@github.com", "evil.example"),
    ],
)
def test_link_host_reads_the_host_a_browser_would_visit(url: str, host: str) -> None:
    """Userinfo, ports, case, a trailing dot and backslashes do not fool it."""
    assert link_host(url) == host


@pytest.mark.parametrize(
    "text",
    [
        "see https://github.com/o/r/pull/1",
        "see https://docs.github.com/en",
        "see HTTPS://GITHUB.COM/X",
        "mail me: someone@evil.example",
        "ftp://evil.example is not a web link",
        "a // comment.example",
    ],
)
def test_links_to_allowed_hosts_stay(text: str) -> None:
    """Allowed domains and their subdomains pass, whatever the case; non-links are not links."""
    assert redact_links(text, GITHUB) == (text, ())


@pytest.mark.parametrize(
    ("text", "redacted", "hosts"),
    [
        ("go to https://evil.example/x now", "go to (redacted) now", ("evil.example",)),
        ("https://github.com@evil.example/", "(redacted)", ("evil.example",)),
        (
            "http://evil.example.github.com.attacker.io/",
            "(redacted)",
            ("evil.example.github.com.attacker.io",),
        ),
        ("https://notgithub.com", "(redacted)", ("notgithub.com",)),
        ("visit www.evil.example.", "visit (redacted).", ("www.evil.example",)),
        ("[click](https://evil.example/a_(b)) ok", "[click]((redacted)) ok", ("evil.example",)),
        ('<a href="//evil.example/x">x</a>', '<a href="(redacted)">x</a>', ("evil.example",)),
        ("[x](//evil.example)", "[x]((redacted))", ("evil.example",)),
        ("`curl https://evil.example/i.sh`", "`curl (redacted)`", ("evil.example",)),
        ("https&#58;//evil&#46;example/x&amp;y.", "(redacted).", ("evil.example",)),
        (
            "https://EVIL.example and https://evil.example",
            "(redacted) and (redacted)",
            ("evil.example", "evil.example"),
        ),
    ],
)
def test_links_to_other_hosts_are_redacted(
    text: str, redacted: str, hosts: tuple[str, ...]
) -> None:
    """The whole link becomes (redacted); sentence punctuation after it stays."""
    assert redact_links(text, GITHUB) == (redacted, hosts)


def test_no_domains_means_no_restriction() -> None:
    """An empty allowlist redacts nothing."""
    assert redact_links("https://evil.example", ()) == ("https://evil.example", ())


# ------------------------------------------------------------------ mentions


@pytest.mark.parametrize(
    ("text", "neutral", "count"),
    [
        ("thanks @octocat!", "thanks `@octocat`!", 1),
        ("@org/team-a please", "`@org/team-a` please", 1),
        ("@a, @b-c and @d.", "`@a`, `@b-c` and `@d`.", 3),
        ("mail a@b.com or first.last@example.org", "mail a@b.com or first.last@example.org", 0),
        ("already `@octocat` safe", "already `@octocat` safe", 0),
        ("in code `x = @decorator` too", "in code `x = @decorator` too", 0),
        ("```\n@inside fence\n```\n@outside", "```\n@inside fence\n```\n`@outside`", 1),
        ("~~~~\n@a\n~~~\n@b", "~~~~\n@a\n~~~\n@b", 0),
        ("see https://medium.com/@writer", "see https://medium.com/@writer", 0),
        ("@ alone and @@", "@ alone and @@", 0),
        ("é@user", "é`@user`", 1),
        ("\\@escaped", "`@escaped`", 1),
        ("\\\\@user", "\\\\`@user`", 1),
        ("`stray @user", "\\`stray `@user`", 1),
        ("``two @user`", "\\`\\`two `@user`\\`", 1),
        ("`multi\n@user`", "\\`multi\n`@user`\\`", 1),
        ("`code`@user", "`code` `@user`", 1),
        ("@user`code`", "`@user` `code`", 1),
        ("``a``@a-", "``a`` `@a-`", 1),
        ("@b\\``c`", "`@b`\\``c`", 1),
        ("@a@b.com", "`@a@b`.com", 1),
        ("_@em_ and x_@y", "_`@em`_ and x_`@y`", 2),
        ("&#64;bob &commat;eve @&#98;ob", "`&#64;bob` `&commat;eve` `@&#98;ob`", 3),
        ("&#97;@c stays an address", "&#97;@c stays an address", 0),
        ("| `a | @b` |", "| \\`a | `@b`\\` |", 1),
        ("- a\n   ```\n@b\n   ```", "- a\n   \\`\\`\\`\n`@b`\n   ```", 1),
        (" ~~~\n~~~\n@a", " ~~~\n~~~\n`@a`", 1),
        ("```\n@a\r```\r@b", "```\n@a\r```\r`@b`", 1),
    ],
)
def test_mentions_are_put_in_code_spans(text: str, neutral: str, count: int) -> None:
    """Mentions in prose are wrapped; emails, code, links and escaped ones are handled."""
    assert neutralize_mentions(text) == (neutral, count)


@pytest.mark.parametrize(
    "text",
    ["`stray @user", "``two @user`", "\\@escaped", "`multi\n@user`", "a `@b` @c `d"],
)
def test_neutralizing_mentions_is_idempotent(text: str) -> None:
    """A second pass finds nothing: what the first inserted is recognised as code."""
    once, _ = neutralize_mentions(text)
    assert neutralize_mentions(once) == (once, 0)


def test_stray_backticks_are_escaped_when_a_mention_is_in_code() -> None:
    """A renderer may pair a stray backtick with a span's opener lines away; escaping stops it."""
    assert neutralize_mentions("`a````\n`@a`") == ("\\`a\\`\\`\\`\\`\n`@a`", 0)


def test_text_without_mentions_is_returned_unchanged() -> None:
    """Stray backticks are only escaped when something is wrapped."""
    assert neutralize_mentions("a ` stray tick") == ("a ` stray tick", 0)


# ------------------------------------------------------------------ closing references


@pytest.mark.parametrize(
    ("text", "neutral", "count"),
    [
        ("This fixes #12.", "This `fixes #12`.", 1),
        ("Closes org/repo#3", "`Closes org/repo#3`", 1),
        ("resolves GH-4", "`resolves GH-4`", 1),
        ("FIXED: #7 and close #8", "`FIXED: #7` and `close #8`", 2),
        ("Resolved\t#9", "`Resolved\t#9`", 1),
        (
            "fix https://github.com/o/r/issues/5",
            "`fix https://github.com/o/r/issues/5`",
            1,
        ),
        ("prefixes #12 and closet #1", "prefixes #12 and closet #1", 0),
        ("see #12, not fixed", "see #12, not fixed", 0),
        ("`fixes #12` already", "`fixes #12` already", 0),
        ("fixes\n#12", "fixes\n#12", 0),
    ],
)
def test_closing_references_are_put_in_code_spans(text: str, neutral: str, count: int) -> None:
    """GitHub's keywords, any case, with a colon or not; plain references stay."""
    assert neutralize_references(text) == (neutral, count)


# ------------------------------------------------------------------ clean_prose, clean_code


def test_clean_prose_runs_only_the_switches_that_are_on() -> None:
    """Nothing on: the text is returned as it came, with no notes."""
    text = "@a fixes #1 <!-- x --> https://evil.example"
    assert clean_prose(text, TextRules()) == (text, ())
    assert not TextRules().active


def test_clean_prose_strips_hidden_text_before_mentions() -> None:
    """A zero-width character inside a mention does not hide it from neutralising."""
    rules = TextRules(strip_hidden=True, neutralize_mentions=True)
    assert clean_prose("hi @\u200bbob", rules) == (
        "hi `@bob`",
        ("hidden text removed (1 invisible character)", "1 mention neutralized"),
    )


def test_clean_prose_names_each_redacted_host_once() -> None:
    """The note counts links and lists their hosts without repeats."""
    rules = TextRules(allowed_domains=GITHUB)
    text = "https://a.example/1 https://a.example/2 https://b.example"
    assert clean_prose(text, rules)[1] == ("3 links redacted (a.example, b.example)",)


def test_clean_code_only_strips_invisible_characters_and_escapes() -> None:
    """Mentions and links in code are code; HTML comments are content."""
    rules = TextRules(strip_hidden=True, neutralize_mentions=True, allowed_domains=GITHUB)
    code = "+@decorator # https://evil.example <!-- x -->\u200b\r\n"
    assert clean_code(code, rules) == (
        "+@decorator # https://evil.example <!-- x -->\r\n",
        ("hidden text removed (1 invisible character)",),
    )
    assert clean_code(code, TextRules()) == (code, ())


# ------------------------------------------------------------------ truncate


def test_truncate_leaves_short_text_alone() -> None:
    """Text within the limit is not cut."""
    assert truncate("abc", 3) == ("abc", False)


def test_truncate_appends_the_suffix_within_the_limit() -> None:
    """The cut text plus the suffix is exactly the limit."""
    text, cut = truncate("x" * 100, 50)
    assert cut
    assert text == "x" * (50 - len(SUFFIX)) + SUFFIX
    assert len(text) == 50


@pytest.mark.parametrize("limit", [1, 5, len(SUFFIX)])
def test_truncate_hard_cuts_when_the_suffix_does_not_fit(limit: int) -> None:
    """A limit not larger than the suffix: no suffix at all."""
    assert truncate("y" * 100, limit) == ("y" * limit, True)


def test_truncate_counts_code_points() -> None:
    """Emoji and accented letters are one character each."""
    text = "😀" * 10
    assert truncate(text, 10) == (text, False)
    assert truncate(text, 9) == ("😀" * 9, True)


def test_truncate_backs_off_a_cut_that_exposes_a_mention() -> None:
    """Cutting a code span in half would leave ``\\`@bo``: the cut goes back a word."""
    rules = TextRules(neutralize_mentions=True)
    text = "ok `@bob` " + "z" * 40
    head, cut = truncate(text, len("ok `@bo") + len(SUFFIX), rules)
    assert cut
    assert head == "ok" + SUFFIX


def test_truncate_backs_off_a_cut_that_changes_a_link_host() -> None:
    """``https://evil.example.github.com`` cut to ``https://evil.example`` is not kept."""
    rules = TextRules(allowed_domains=GITHUB)
    text = "see https://evil.example.github.com/page"
    head, _ = truncate(text, len("see https://evil.example"), rules)
    assert head == "see"
    assert truncate(text, len("see https://evil.example")) == ("see https://evil.example", True)
