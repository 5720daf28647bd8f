"""Go ``text/template`` syntax: the lexer and the literals inside actions.

Text outside ``{{ }}`` becomes ``text`` tokens, trimmed as ``{{- `` and `` -}}`` ask
(all adjacent spaces, tabs and newlines, as Go does); comments ``{{/* */}}`` are
dropped. Inside an action each item becomes a token with the line it starts on.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from mecha.errors import TemplateError

KEYWORDS = frozenset(
    {"if", "else", "end", "range", "with", "break", "continue", "define", "template", "block"}
)
_SPACE = " \t\r\n"
_TERMINATORS = frozenset(_SPACE + ".,|:()")
_TOKEN = re.compile(
    r"""(?P<space>[ \t\r\n]+)
    |(?P<declare>:=)|(?P<assign>=)|(?P<pipe>\|)|(?P<lparen>\()|(?P<rparen>\))|(?P<comma>,)
    |(?P<string>"(?:[^"\\\n]|\\.)*")|(?P<raw>`[^`]*`)|(?P<char>'(?:[^'\\\n]|\\[^\n])+')
    |(?P<number>[+-]?(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+
        |(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?))
    |(?P<field>\.\w+)|(?P<variable>\$\w*)|(?P<dot>\.)|(?P<word>[^\W\d]\w*)""",
    re.VERBOSE,
)
#: items that must be followed by a space, a separator or }}
_WORDLIKE = frozenset({"number", "field", "variable", "word", "dot", "char"})
_UNTERMINATED = {'"': "quoted string", "`": "raw string", "'": "character constant"}
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_ESCAPE = re.compile(r"\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|(.))")


@dataclass(frozen=True, slots=True)
class Token:
    """One lexical item: kind, its text and the line it starts on."""

    kind: str
    text: str
    line: int


def error(line: int, message: str, hint: str = "") -> TemplateError:
    """A template mistake on ``line``."""
    return TemplateError(f"template line {line}: {message}", hint=hint)


def lex(text: str) -> list[Token]:
    """The tokens of a Go template, ending with an ``eof`` token."""
    return _Lexer(text).run()


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.newlines = [i for i, ch in enumerate(text) if ch == "\n"]
        self.tokens: list[Token] = []

    def line(self, pos: int) -> int:
        return bisect.bisect_left(self.newlines, pos) + 1

    def emit(self, kind: str, text: str, pos: int) -> None:
        self.tokens.append(Token(kind, text, self.line(pos)))

    def run(self) -> list[Token]:
        pos, trim_next = 0, False
        while True:
            start = self.text.find("{{", pos)
            chunk = self.text[pos : len(self.text) if start < 0 else start]
            trim_left = start >= 0 and _left_trim(self.text, start + 2)
            chunk = chunk.lstrip(_SPACE) if trim_next else chunk
            chunk = chunk.rstrip(_SPACE) if trim_left else chunk
            if chunk:
                self.emit("text", chunk, pos)
            if start < 0:
                self.emit("eof", "", len(self.text))
                return self.tokens
            pos, trim_next = self.action(start, start + (4 if trim_left else 2))

    def action(self, start: int, pos: int) -> tuple[int, bool]:
        """Lex one ``{{...}}``; return where the text resumes and whether to trim it."""
        if self.text.startswith("/*", pos):
            return self.comment(start, pos)
        self.emit("left", "{{", start)
        while True:
            end = _right_delim(self.text, pos)
            if end is not None:
                self.emit("right", "}}", pos)
                return end
            if pos >= len(self.text):
                raise error(self.line(start), "unclosed action: {{ has no }}")
            pos = self.item(pos)

    def item(self, pos: int) -> int:
        match = _TOKEN.match(self.text, pos)
        if match is None or match.lastgroup is None:
            char = self.text[pos]
            if char in _UNTERMINATED:
                raise error(self.line(pos), f"unterminated {_UNTERMINATED[char]}")
            raise error(self.line(pos), f"unexpected {char!r} in the action")
        kind, value, end = match.lastgroup, match.group(), match.end()
        if kind in _WORDLIKE and not self.ends(end):
            bad = self.text[pos : end + 1]
            raise error(self.line(pos), f"bad syntax {bad!r}", "separate items with spaces")
        if kind == "word" and value in ("true", "false", "nil"):
            kind = "literal"
        elif kind == "word" and value in KEYWORDS:
            kind = "keyword"
        self.emit(kind, value, pos)
        return end

    def ends(self, pos: int) -> bool:
        """Whether an item may end here: a space, a separator, }} or the end of the text."""
        return (
            pos >= len(self.text)
            or self.text[pos] in _TERMINATORS
            or _right_delim(self.text, pos) is not None
        )

    def comment(self, start: int, pos: int) -> tuple[int, bool]:
        close = self.text.find("*/", pos + 2)
        if close < 0:
            raise error(self.line(start), "unclosed comment: /* has no */")
        end = _right_delim(self.text, close + 2)
        if end is None:
            raise error(self.line(close), "comment ends before }}", "write {{/* ... */}}")
        return end


def _left_trim(text: str, pos: int) -> bool:
    """``{{- `` trims: a dash, then a space (``{{-3}}`` is the number -3)."""
    return text.startswith("-", pos) and pos + 1 < len(text) and text[pos + 1] in _SPACE


def _right_delim(text: str, pos: int) -> tuple[int, bool] | None:
    """At ``}}`` or `` -}}``: where the text resumes and whether to trim it."""
    if text.startswith("}}", pos):
        return pos + 2, False
    if pos < len(text) and text[pos] in _SPACE and text.startswith("-}}", pos + 1):
        return pos + 4, True
    return None


# ---------------------------------------------------------------- literals


def unquote(token: Token) -> str:
    """The value of a ``"quoted"`` or ```raw``` string, Go escapes applied."""
    if token.kind == "raw":
        return token.text[1:-1]

    def escape(match: re.Match[str]) -> str:
        seq = match.group()[1:]
        if seq in _ESCAPES:
            return _ESCAPES[seq]
        if seq in ("\\", '"', "'"):
            return seq
        code = int(seq[1:], 16) if seq[0] in "xuU" else int(seq, 8) if len(seq) == 3 else -1
        if 0 <= code < 0xD800 or 0xDFFF < code <= 0x10FFFF:
            return chr(code)
        raise error(token.line, f"unknown escape \\{seq} in {token.text}")

    return _ESCAPE.sub(escape, token.text[1:-1])


def number(token: Token) -> int | float:
    """The value of a number or ``'c'`` character constant (its code point)."""
    text = token.text.replace("_", "")
    body = text.lstrip("+-")
    try:
        if token.kind == "char":
            char = unquote(Token("string", '"' + token.text[1:-1] + '"', token.line))
            if len(char) != 1:
                raise ValueError(char)
            return ord(char)
        if body[:2].lower() in ("0x", "0b", "0o"):
            return int(text, 0)
        if "." in body or "e" in body.lower():
            return float(text)
        return int(text, 8) if len(body) > 1 and body[0] == "0" else int(text)
    except ValueError:
        raise error(token.line, f"bad number {token.text}") from None
