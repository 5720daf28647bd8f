"""Paths in a diff as git writes them: quoted when they hold a control character,
a quote, a backslash or non-ASCII text.

``unquote_path`` reads a path that git may have quoted (``"a/x\\ty"``, octal UTF-8 bytes);
``quote_path`` writes one the same way. Pure; no I/O.
"""

from __future__ import annotations

import re

_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}
_QUOTE_ME = {chr(v): k for k, v in _ESCAPES.items() if k not in "ab"}


def unquote_path(text: str) -> tuple[str, int]:
    """A path as git may quote it (``"a/x\\ty"``, octal UTF-8 bytes), and the characters used.

    Text not starting with ``"`` is returned whole.
    """
    if not text.startswith('"'):
        return text, len(text)
    out = bytearray()
    index = 1
    while index < len(text) and text[index] != '"':
        char = text[index]
        if char != "\\" or index + 1 >= len(text):
            out += char.encode("utf-8", "surrogatepass")
            index += 1
            continue
        octal = re.match(r"[0-7]{1,3}", text[index + 1 : index + 4])
        if octal:
            out.append(int(octal.group(), 8) & 0xFF)
            index += 1 + len(octal.group())
        else:
            escaped = text[index + 1]
            known = escaped in _ESCAPES
            out += bytes([_ESCAPES[escaped]]) if known else escaped.encode("utf-8", "surrogatepass")
            index += 2
    return out.decode("utf-8", errors="replace"), index + 1


def quote_path(path: str) -> str:
    """``path`` quoted the way git quotes it, when it has to be."""
    quoted = "".join(_quote_char(char) for char in path)
    return path if quoted == path else f'"{quoted}"'


def _quote_char(char: str) -> str:
    if char in _QUOTE_ME:
        return "\\" + _QUOTE_ME[char]
    if " " <= char < "\x7f":
        return char
    return "".join(f"\\{byte:03o}" for byte in char.encode("utf-8", "surrogatepass"))
