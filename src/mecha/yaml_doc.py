"""YAML text → plain Python values that remember where each key and value stood.

PyYAML's ``safe_load`` forgets positions and silently keeps the last of two equal keys.
``load_yaml`` composes the node tree instead, builds plain values (dict, list, str, int,
float, bool, None) and records the line and column of every key and value, so a later
check can point at ``file:line:column``. Duplicate keys, several documents in one file,
and non-string keys are mistakes here. Takes text, does no I/O.

Positions are counted as editors and YAML 1.2 count them: a line ends at ``\r\n``,
``\r`` or ``\n`` (PyYAML, a YAML 1.1 parser, also breaks at U+0085, U+2028 and U+2029,
and libyaml reports an error at the end of the text one line past it), columns are
characters from the line's start, and a leading byte order mark is not counted.
Positions are taken from the parser's character offset, never from its line count.
"""

from __future__ import annotations

import bisect
import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import yaml

from mecha.errors import FileError, Location, Problem

Path = tuple[str | int, ...]

#: the C parser is several times faster; PyYAML ships it on most platforms
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_BOOL_TAG = "tag:yaml.org,2002:bool"


class _Loader(_Base):  # type: ignore[misc]
    """Safe loading with YAML 1.2 booleans: only true/false, so ``on:`` stays a key.

    YAML 1.1 (PyYAML's default) reads on/off/yes/no/y/n as booleans; Go's yaml.v3, which
    wrote every existing worker file's ``on: [...]``, reads them as strings.
    """

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, re.Pattern[str]]]]] = {
        first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
        for first, resolvers in _Base.yaml_implicit_resolvers.items()
    }


_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass(frozen=True)
class Document:
    """One parsed YAML document and the positions of its parts."""

    data: Any
    file: str
    keys: dict[Path, Location] = field(default_factory=dict, repr=False)
    values: dict[Path, Location] = field(default_factory=dict, repr=False)

    def where(self, path: Path, *, key: bool = False) -> Location:
        """Where ``path`` stands; the key's position if ``key``; else the nearest known parent."""
        table = self.keys if key else self.values
        for end in range(len(path), -1, -1):
            spot = path[:end]
            if spot in table:
                return table[spot]
            if spot in self.values:
                return self.values[spot]
        return Location(self.file, 1, 1)


def load_yaml(text: str, *, file: str) -> Document:
    """Parse one YAML document; raise FileError pointing at the first syntax mistake."""
    text = text.removeprefix("\ufeff")  # libyaml leaves a BOM out of its offsets, PyYAML not
    places = _Places(file, text)
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, places) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        raise _character_error(places, exc.position, exc.character) from None
    except UnicodeEncodeError as exc:  # a lone surrogate: libyaml reads UTF-8
        raise _character_error(places, exc.start, ord(text[exc.start])) from None
    except yaml.YAMLError as exc:
        raise FileError([Problem(places.at(0), f"not valid YAML: {exc}")]) from None
    if len(nodes) > 1:
        second = places.mark(nodes[1].start_mark)
        raise FileError(
            [Problem(second, "a second YAML document ('---') in one file", "put one per file")]
        )
    if not nodes:
        return Document(data=None, file=file)
    builder = _Builder(places)
    try:
        data = builder.build(nodes[0], ())
    except yaml.MarkedYAMLError as exc:  # e.g. a tag no safe loader constructs: !!python/...
        raise _syntax_error(exc, places) from None
    if builder.problems:
        raise FileError(builder.problems)
    return Document(data=data, file=file, keys=builder.keys, values=builder.values)


#: where lines end, for editors and YAML 1.2 alike
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class _Places:
    """Character offsets in a text → 1-based line and column, as an editor shows them."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self._text = text
        self._starts = [0, *(found.end() for found in _LINE_BREAK.finditer(text))]

    def at(self, index: int) -> Location:
        """The place of the character at ``index`` (the end of the text at most)."""
        index = min(max(index, 0), len(self._text))
        if 0 < index < len(self._text) and self._text[index - 1 : index + 1] == "\r\n":
            index -= 1  # inside a CRLF: the break starts at its CR
        line = bisect.bisect_right(self._starts, index)
        return Location(self.file, line, index - self._starts[line - 1] + 1)

    def mark(self, mark: yaml.Mark) -> Location:
        """Where a parser's mark points (its offset; its line count is YAML 1.1's)."""
        return self.at(mark.index)


def _syntax_error(exc: yaml.MarkedYAMLError, places: _Places) -> FileError:
    mark = exc.problem_mark or exc.context_mark
    spot = places.mark(mark) if mark else places.at(0)
    what = exc.problem or exc.context or "not valid YAML"
    return FileError(
        [Problem(spot, f"YAML syntax error: {what}", "fix the YAML syntax at this spot")]
    )


def _character_error(places: _Places, index: int, code: int) -> FileError:
    """A character YAML does not allow in a file (a control character, a lone surrogate)."""
    return FileError(
        [
            Problem(
                places.at(index),
                f"the character U+{code:04X} is not allowed in YAML",
                "remove it"
                if 0xD800 <= code <= 0xDFFF  # half of a character: no escape writes it
                else f'remove it, or write it as "\\u{code:04x}" inside a double-quoted string',
            )
        ]
    )


class _Builder:
    """Turns a node tree into plain values, noting positions and structural mistakes."""

    def __init__(self, places: _Places) -> None:
        self.places = places
        self.keys: dict[Path, Location] = {}
        self.values: dict[Path, Location] = {}
        self.problems: list[Problem] = []
        self._loader = _Loader("")
        self._depth = 0

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.values[path] = self.places.mark(node.start_mark)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._loader.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        self._loader.flatten_mapping(node)  # resolves '<<' merge keys in place
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            spot = self.places.mark(key_node.start_mark)
            key = self._loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                self.problems.append(
                    Problem(spot, f"key {key!r} is not a string", "quote it: write it as text")
                )
                continue
            if key in out:
                first = self.keys[(*path, key)]
                self.problems.append(
                    Problem(
                        spot, f'key "{key}" appears twice', f"keep one; the first is at {first}"
                    )
                )
                continue
            self.keys[(*path, key)] = spot
            out[key] = self.build(value_node, (*path, key))
        return out


def suggest_key(key: str, valid: Sequence[str], *, listing: str = "valid keys") -> str:
    """The hint for an unknown key: the closest valid one, else the list of valid ones."""
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if close:
        return f'did you mean "{close[0]}"?'
    return f"{listing}: {', '.join(valid)}"
