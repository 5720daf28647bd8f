"""Text sanitisers for the policy gate (pure): what a worker's prose may say on a forge.

Each sanitiser takes text and returns the new text with what it changed:

* ``strip_hidden`` removes what a reader cannot see but a model or terminal can: HTML
  comments (optional), zero-width and bidi characters, Unicode tag characters, ANSI/terminal
  escape sequences and control characters (CRLF line ends are kept).
* ``redact_links`` replaces links to hosts outside an allowlist with ``(redacted)``.
* ``neutralize_mentions`` and ``neutralize_references`` put ``@user``, ``@org/team`` and
  closing references (``fixes #12``) in code spans, so nobody is pinged and nothing is
  closed. Existing code (fenced blocks, inline spans) is left alone; stray backticks in
  prose are escaped so that the inserted spans pair up as intended.
* ``truncate`` cuts to a length in characters with the policy's suffix, backing off a word at
  a time while the cut would leave something the active rules would have rewritten (half a
  code span exposing a mention, a cut link pointing elsewhere).

``clean_prose`` and ``clean_code`` run the ones a ``TextRules`` switches on, in a fixed order:
hidden text, links, mentions, references.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate

#: appended to a comment cut to its ``max_length``
SUFFIX = "\n\n... (truncated by policy)"
#: what a link to a host outside the allowlist becomes
REDACTED = "(redacted)"
#: zero-width, bidi, invisible-operator and Unicode tag characters
INVISIBLE = re.compile(
    "[\u200b-\u200f\u2060-\u2064\ufeff\u180e\u202a-\u202e\u2066-\u2069\u061c\U000e0000-\U000e007f]"
)
_ESCAPE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves
    r"|[\]PX^_][^\x07\x1b\n]*(?:\x07|\x1b\\)?"  # OSC, DCS, SOS, PM, APC up to BEL/ST/line end
    r"|[ -/]*[0-~])"  # single ESC sequences
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)")
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
# a run like ``@a@b`` is one match: after `` `@a` `` the ``@b`` would be a mention of its own
_MENTION = re.compile(r"(?<![A-Za-z0-9])(?:@[A-Za-z0-9][A-Za-z0-9-]*(?:/[A-Za-z0-9][\w-]*)?)+")
_REFERENCE = re.compile(
    r"(?<![A-Za-z0-9])(?:(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?):?[ \t]+"
    r"(?:(?:[\w.-]+/[\w.-]+)?#\d+|GH-\d+|https?://[^\s/]+/[\w.-]+/[\w.-]+/(?:issues|pull)/\d+))+",
    re.IGNORECASE,
)
_URL = re.compile(
    r"(?:\bhttps?:|(?<=[(<\"'=]))//[^\s<>\"'`]+|(?<![\w.-])www\.[^\s<>\"'`]+", re.IGNORECASE
)
_TRAILING = ".,:;!?*_~'\""
_FENCE_OPEN = re.compile(r"( {0,3})(`{3,}|~{3,})(.*)")
_LINE_END = re.compile(r"(?<=\n)|(?<=\r)(?!\n)")  # as Markdown ends lines
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_MAX_BACKOFF = 64


@dataclass(frozen=True, slots=True)
class TextRules:
    """The policy's text switches (all off by default: upstream leaves text alone)."""

    neutralize_mentions: bool = False
    neutralize_references: bool = False
    strip_hidden: bool = False
    #: link hosts allowed (each also allows its subdomains); empty = no restriction
    allowed_domains: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        """Some switch is on."""
        return (
            self.neutralize_mentions
            or self.neutralize_references
            or self.strip_hidden
            or bool(self.allowed_domains)
        )


@dataclass(frozen=True, slots=True)
class Hidden:
    """What ``strip_hidden`` removed, by kind."""

    comments: int = 0
    invisible: int = 0
    escapes: int = 0
    controls: int = 0

    def __bool__(self) -> bool:
        return bool(self.comments or self.invisible or self.escapes or self.controls)

    def __str__(self) -> str:
        """``1 HTML comment, 3 invisible characters``: the kinds that were found."""
        parts = (
            (self.comments, "HTML comment"),
            (self.invisible, "invisible character"),
            (self.escapes, "escape sequence"),
            (self.controls, "control character"),
        )
        return ", ".join(plural(count, noun) for count, noun in parts if count)


def plural(count: int, noun: str) -> str:
    """``1 link``, ``2 links``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def strip_hidden(text: str, *, html: bool = True) -> tuple[str, Hidden]:
    """``text`` without hidden content; ``html=False`` keeps HTML comments (for code)."""
    text, escapes = _ESCAPE.subn("", text)
    text, controls = _CONTROL.subn("", text)
    text, invisible = INVISIBLE.subn("", text)
    comments = 0
    while html and "<!--" in text:  # removing one may join the halves of another
        text, found = _COMMENT.subn("", text)
        comments += found
    return text, Hidden(comments, invisible, escapes, controls)


def link_host(url: str) -> str:
    """The host a link goes to, as a browser reads it: after any ``user@``, lowercased."""
    rest = re.sub(r"^(?:https?:)?//", "", url, flags=re.IGNORECASE)
    authority = re.split(r"[/\\?#]", rest, maxsplit=1)[0]
    host = authority.rpartition("@")[2]
    host = host[: host.find("]") + 1] if host.startswith("[") else host.partition(":")[0]
    return host.rstrip(".").lower()


def host_allowed(host: str, domains: Sequence[str]) -> bool:
    """``host`` is one of ``domains`` or a subdomain of one (``domains`` lowercased)."""
    return any(host == domain or host.endswith("." + domain) for domain in domains)


def redact_links(text: str, domains: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """Links to hosts outside ``domains`` become ``(redacted)``; also the host of each one.

    Links are found as a renderer shows the text (``https&#58;//x`` is a link). An empty
    ``domains`` allows every host.
    """
    if not domains:
        return text, ()
    view, at = _decoded(text)
    hosts: list[str] = []
    out: list[str] = []
    position = 0
    for match in _URL.finditer(view):
        url = _trim_url(match.group())
        host = link_host(url)
        if host_allowed(host, domains):
            continue
        hosts.append(host or "?")
        out.append(text[position : at[match.start()]] + REDACTED)
        position = at[match.start() + len(url)]
    out.append(text[position:])
    return "".join(out), tuple(hosts)


def neutralize_mentions(text: str) -> tuple[str, int]:
    """``@user`` and ``@org/team`` outside code and links become `` `@user` ``; how many."""
    return _wrap(text, _MENTION, skip_links=True)


def neutralize_references(text: str) -> tuple[str, int]:
    """Closing references (``fixes #12``, ``closes org/repo#3``) go in code spans; how many."""
    return _wrap(text, _REFERENCE, skip_links=False)


def clean_prose(text: str, rules: TextRules) -> tuple[str, tuple[str, ...]]:
    """``text`` through every sanitiser ``rules`` switches on, and a note for each change."""
    notes: list[str] = []
    if rules.strip_hidden:
        text, hidden = strip_hidden(text)
        if hidden:
            notes.append(f"hidden text removed ({hidden})")
    if rules.allowed_domains:
        text, hosts = redact_links(text, rules.allowed_domains)
        if hosts:
            shown = ", ".join(dict.fromkeys(hosts))
            notes.append(f"{plural(len(hosts), 'link')} redacted ({shown})")
    if rules.neutralize_mentions:
        text, count = neutralize_mentions(text)
        if count:
            notes.append(f"{plural(count, 'mention')} neutralized")
    if rules.neutralize_references:
        text, count = neutralize_references(text)
        if count:
            notes.append(f"{plural(count, 'closing reference')} neutralized")
    return text, tuple(notes)


def clean_code(text: str, rules: TextRules) -> tuple[str, tuple[str, ...]]:
    """A diff through ``strip_hidden`` (HTML comments kept) if switched on, and a note."""
    if not rules.strip_hidden:
        return text, ()
    text, hidden = strip_hidden(text, html=False)
    return text, ((f"hidden text removed ({hidden})",) if hidden else ())


def truncate(text: str, limit: int, rules: TextRules | None = None) -> tuple[str, bool]:
    """``text`` cut to at most ``limit`` characters with ``SUFFIX``; whether it was cut.

    When the limit is not larger than the suffix the text is hard-cut without it. With
    ``rules`` active, the cut backs off a word at a time until the kept part is something
    ``clean_prose`` leaves as it is.
    """
    if len(text) <= limit:
        return text, False
    if limit <= len(SUFFIX):
        return _settle(text[: max(limit, 0)], rules), True
    return _settle(text[: limit - len(SUFFIX)], rules) + SUFFIX, True


def _settle(head: str, rules: TextRules | None) -> str:
    if rules is None or not rules.active:
        return head
    for _ in range(_MAX_BACKOFF):
        if clean_prose(head, rules)[0] == head:
            return head
        kept = head.rstrip()
        cut = max(kept.rfind(" "), kept.rfind("\n"), kept.rfind("\t"))
        head = kept[:cut] if cut > 0 else ""
    return ""


def _trim_url(url: str) -> str:
    """A matched link without the punctuation that ends the sentence around it."""
    while url:
        unbalanced = url[-1] == ")" and url.count(")") > url.count("(")
        if url[-1] in _TRAILING or unbalanced:
            url = url[:-1]
        else:
            break
    return url


def _wrap(text: str, pattern: re.Pattern[str], *, skip_links: bool) -> tuple[str, int]:
    """Every match of ``pattern`` in prose put in a code span; the text unchanged if none.

    If anything matches, even inside code, stray backticks in prose are escaped: otherwise a
    renderer could pair one with a code span's opener lines away and expose the match.
    """
    if not pattern.search(_decoded(text)[0]):
        return text, 0
    segments = list(_segments(text))
    out: list[str] = []
    total = 0
    for index, (chunk, is_code) in enumerate(segments):
        if is_code:
            out.append(chunk)
            continue
        wrapped, count = _wrap_prose(chunk, pattern, skip_links=skip_links)
        total += count
        # an inserted backtick touching a code span's would merge with it into one run
        if count and out and out[-1].endswith("`") and wrapped.startswith("`"):
            wrapped = " " + wrapped
        following = segments[index + 1][0] if index + 1 < len(segments) else ""
        if count and following.startswith("`") and _live_tick_at_end(wrapped):
            wrapped += " "
        out.append(wrapped)
    return "".join(out), total


def _live_tick_at_end(text: str) -> bool:
    body = text.removesuffix("`")
    return body != text and (len(body) - len(body.rstrip("\\"))) % 2 == 0


def _wrap_prose(chunk: str, pattern: re.Pattern[str], *, skip_links: bool) -> tuple[str, int]:
    view, at = _decoded(chunk)
    links = [match.span() for match in _URL.finditer(view)] if skip_links else []
    out: list[str] = []
    position = count = 0
    for match in pattern.finditer(view):
        if any(start <= match.start() < end for start, end in links):
            continue
        start, end = at[match.start()], at[match.end()]
        before = _escape_ticks(chunk[position:start])
        if (len(before) - len(before.rstrip("\\"))) % 2:
            before = before[:-1]  # a backslash would escape the opening backtick
        out.append(f"{before}`{chunk[start:end]}`")
        position = end
        count += 1
    out.append(_escape_ticks(chunk[position:]))
    return "".join(out), count


def _decoded(chunk: str) -> tuple[str, list[int]]:
    """``chunk`` with character references decoded, as a renderer shows it (``&#64;`` is
    ``@``), and where each shown character starts in ``chunk`` (plus its length at the end)."""
    view: list[str] = []
    at: list[int] = []
    position = 0
    for match in _ENTITY.finditer(chunk):
        char = html.unescape(match.group())
        view.append(chunk[position : match.start()])
        at.extend(range(position, match.start()))
        if len(char) == 1:
            view.append(char)
            at.append(match.start())
        else:
            view.append(match.group())
            at.extend(range(match.start(), match.end()))
        position = match.end()
    view.append(chunk[position:])
    at.extend(range(position, len(chunk) + 1))
    return "".join(view), at


def _escape_ticks(prose: str) -> str:
    """Backticks in prose (never part of a code span) escaped, so they cannot pair with ours."""
    return re.sub(r"(\\*)`", lambda m: m[1] + ("`" if len(m[1]) % 2 else "\\`"), prose)


def _segments(text: str) -> Iterator[tuple[str, bool]]:
    """``text`` as consecutive (piece, is_code) parts: fenced blocks and inline code spans.

    Only what is surely code counts as code: fenced blocks (see ``_fence_end``) and inline
    spans within one line without a ``|`` (a table cell would split them). Anything else is
    treated as prose, which only ever neutralises more.
    """
    position = 0
    for start, end in _code_ranges(text):
        if start > position:
            yield text[position:start], False
        yield text[start:end], True
        position = end
    if position < len(text):
        yield text[position:], False


def _code_ranges(text: str) -> Iterator[tuple[int, int]]:
    lines = _LINE_END.split(text)
    starts = list(accumulate(map(len, lines), initial=0))
    index = 0
    while index < len(lines):
        fence_end = _fence_end(lines, index)
        if fence_end is not None:
            yield starts[index], starts[fence_end]
            index = fence_end
            continue
        for start, end in _inline_code(lines[index].rstrip("\r\n")):
            yield starts[index] + start, starts[index] + end
        index += 1


def _fence_end(lines: list[str], index: int) -> int | None:
    """If ``lines[index]`` opens a fenced block, the index of the line after it, else None.

    A fence whose content has a line indented less than the opener is not trusted: in a list
    item, that line would end the item and the block with it.
    """
    opening = _FENCE_OPEN.fullmatch(lines[index].rstrip("\r\n"))
    if opening is None or (opening[2][0] == "`" and "`" in opening[3]):
        return None
    indent, marker = len(opening[1]), opening[2]
    closing = re.compile(rf" {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}[ \t]*")
    for later in range(index + 1, len(lines)):
        body = lines[later].rstrip("\r\n")
        if closing.fullmatch(body):
            return later + 1
        if body.strip() and len(body) - len(body.lstrip(" ")) < indent:
            return None
    return len(lines)


def _inline_code(line: str) -> Iterator[tuple[int, int]]:
    """Code spans of one line: a backtick run up to the next run of the same length."""
    index = 0
    while index < len(line):
        if line[index] == "\\":
            index += 2
            continue
        if line[index] != "`":
            index += 1
            continue
        end = index
        while end < len(line) and line[end] == "`":
            end += 1
        closing = _closing_run(line, end, end - index)
        if closing is None:
            index = end
            continue
        if "|" not in line[index : closing + end - index]:  # a table cell would split it
            yield index, closing + end - index
        index = closing + end - index


def _closing_run(line: str, start: int, size: int) -> int | None:
    index = line.find("`", start)
    while index >= 0:
        end = index
        while end < len(line) and line[end] == "`":
            end += 1
        if end - index == size:
            return index
        index = line.find("`", end)
    return None
