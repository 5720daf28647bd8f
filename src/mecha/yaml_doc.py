"""YAML text → plain Python values that remember where each key and value stood.

PyYAML's ``safe_load`` forgets positions and silently keeps the last of two equal keys.
``load_yaml`` composes the node tree instead, builds plain values (dict, list, str, int,
float, bool, None) and records the line and column of every key and value, so a later
check can point at ``file:line:column``. Duplicate keys, several documents in one file,
and non-string keys are mistakes here. Takes text, does no I/O.
"""

from __future__ import annotations

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
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, file) from None
    except yaml.YAMLError as exc:
        raise FileError([Problem(Location(file, 1, 1), f"not valid YAML: {exc}")]) from None
    if len(nodes) > 1:
        second = _location(file, nodes[1].start_mark)
        raise FileError(
            [Problem(second, "a second YAML document ('---') in one file", "put one per file")]
        )
    if not nodes:
        return Document(data=None, file=file)
    builder = _Builder(file)
    try:
        data = builder.build(nodes[0], ())
    except yaml.MarkedYAMLError as exc:  # e.g. a tag no safe loader constructs: !!python/...
        raise _syntax_error(exc, file) from None
    if builder.problems:
        raise FileError(builder.problems)
    return Document(data=data, file=file, keys=builder.keys, values=builder.values)


def _syntax_error(exc: yaml.MarkedYAMLError, file: str) -> FileError:
    mark = exc.problem_mark or exc.context_mark
    spot = _location(file, mark) if mark else Location(file, 1, 1)
    what = exc.problem or exc.context or "not valid YAML"
    return FileError(
        [Problem(spot, f"YAML syntax error: {what}", "fix the YAML syntax at this spot")]
    )


def _location(file: str, mark: yaml.Mark) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


class _Builder:
    """Turns a node tree into plain values, noting positions and structural mistakes."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.keys: dict[Path, Location] = {}
        self.values: dict[Path, Location] = {}
        self.problems: list[Problem] = []
        self._loader = _Loader("")
        self._depth = 0

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.values[path] = _location(self.file, node.start_mark)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._loader.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        self._loader.flatten_mapping(node)  # resolves '<<' merge keys in place
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            spot = _location(self.file, key_node.start_mark)
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
