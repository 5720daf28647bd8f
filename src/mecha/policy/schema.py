"""What a policy mapping may hold, and every mistake in one (pure).

``policy_problems`` lists each mistake with where it is, fatal (the policy is invalid and
``mecha.policy.gate`` denies every action) or not (an unknown key, a section that is ignored),
for ``mecha worker validate`` and for the ``invalid`` kind of ``mecha.policy.gate.Policy``.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mecha.numbers import whole
from mecha.result import STATUS_STATES, kind_of

#: the sections of a policy and the keys each one knows
SECTIONS: dict[str, tuple[str, ...]] = {
    "comment": ("allow", "max_length", "sticky", "max_per_hour"),
    "labels": ("allow", "allowed", "blocked", "max"),
    "status": ("allow", "states", "contexts"),
    "commit": ("allow", "max_size", "max", "blocked_paths"),
    "metadata": ("allow",),
    "reactions": ("allow",),
}
#: sections that allow nothing unless written (``reactions``: no 👀 without ``allow: true``)
OPT_IN = frozenset({"reactions"})
#: top-level switches, all off by default
SWITCHES = ("dry_run", "neutralize_mentions", "neutralize_references", "strip_hidden")
#: every key a policy mapping knows at its top level
TOP_KEYS = (*SECTIONS, *SWITCHES, "allowed_domains")
#: what each known key must hold, as words for a message
_EXPECTED = {
    "switch": "true or false",
    "count": "a whole number above 0",
    "labels": "a list of label names",
    "states": f"a list of commit states ({', '.join(sorted(STATUS_STATES))})",
    "paths": "a list of paths or patterns",
    "contexts": "a list of status context names or patterns",
    "domains": "a list of domain names",
}
_KIND_OF = {
    "allow": "switch", "sticky": "switch", "max_length": "count", "max_size": "count",
    "max_per_hour": "count",
    "max": "count", "allowed": "labels", "blocked": "labels", "states": "states",
    "contexts": "contexts", "blocked_paths": "paths", "allowed_domains": "domains",
    **dict.fromkeys(SWITCHES, "switch"),
}  # fmt: skip
#: what a key means, added to a problem with its value
_HINTS = {
    "max_per_hour": " (the most comments the worker writes on one pull request or issue in an "
    "hour; write comment: {allow: false} to post none)",
}
_DOMAIN = re.compile(r"[^\s/:@\\?#]+")


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One mistake in a policy: where (``policy.labels.allowed``), what, and how bad.

    A fatal problem makes the policy invalid (every action denied); the others are
    warnings: the key or section is ignored, as upstream ignores it.
    """

    path: str
    message: str
    fatal: bool
    #: the same place as keys and list indexes below the worker file's top level,
    #: ``("policy", "labels", "allowed", 0)``, to locate it in the file
    keys: tuple[Any, ...] = ()

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def policy_problems(mapping: Any) -> list[PolicyProblem]:
    """Every mistake in a ``policy`` mapping, in the order written; ``[]`` if none."""
    if mapping is None:
        return []
    if not isinstance(mapping, Mapping):
        message = f"expected a mapping of rules, got {_shown(mapping)}"
        return [PolicyProblem("policy", message, True, ("policy",))]
    problems: list[PolicyProblem] = []
    for key, value in mapping.items():
        path, keys = f"policy.{key}", ("policy", key)
        if key in SECTIONS:
            problems.extend(_section_problems(path, keys, SECTIONS[key], value))
        elif key in TOP_KEYS:
            problems.extend(_value_problems(path, keys, _KIND_OF[key], value))
        else:
            problems.append(_unknown(path, keys, TOP_KEYS))
    return problems


def normal_domain(text: str) -> str:
    """A domain of ``allowed_domains`` as compared: lower case, no ``*.`` and no outer dots."""
    return text.strip().lower().removeprefix("*.").strip(".")


def _shown(value: Any) -> str:
    """``a string "bug"``, ``a number 0``, ``null``: a value for a problem message."""
    if value is None:
        return "null"
    text = json.dumps(value, ensure_ascii=False, default=str)
    text = text if len(text) <= 60 else text[:59] + "…"
    return f"{kind_of(value)} {text}"


def _section_problems(
    path: str, keys: tuple[Any, ...], known: Sequence[str], value: Any
) -> list[PolicyProblem]:
    if not isinstance(value, Mapping):
        ignored = (
            "no reaction is made (write reactions: {allow: true} to react)"
            if keys[-1] in OPT_IN
            else "this action is not restricted (write allow: false to deny it)"
        )
        shown = _shown(value)
        message = f"expected a mapping of rules, got {shown}; the section is ignored, so {ignored}"
        return [PolicyProblem(path, message, False, keys)]
    problems: list[PolicyProblem] = []
    for key, item in value.items():
        here, at = f"{path}.{key}", (*keys, key)
        if key in known:
            problems.extend(_value_problems(here, at, _KIND_OF[key], item))
        else:
            problems.append(_unknown(here, at, known))
    return problems


def _value_problems(path: str, keys: tuple[Any, ...], kind: str, value: Any) -> list[PolicyProblem]:
    expected = _EXPECTED[kind]
    if kind == "switch":
        ok = isinstance(value, bool)
    elif kind == "count":
        value = whole(value)  # 500.0 is 500, as upstream read it; 500.5 is still wrong
        ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    else:
        ok = isinstance(value, list)
    if not ok:
        hint = _HINTS.get(str(keys[-1]), "")
        return [PolicyProblem(path, f"expected {expected}, got {_shown(value)}{hint}", True, keys)]
    if kind in ("switch", "count"):
        return []
    return [
        PolicyProblem(
            f"{path}[{index}]",
            f"expected {_item_words(kind)}, got {_shown(item)}",
            True,
            (*keys, index),
        )
        for index, item in enumerate(value)
        if not _item_ok(kind, item)
    ]


def _item_ok(kind: str, item: Any) -> bool:
    if not isinstance(item, str) or not item.strip():
        return False
    if kind == "states":
        return item.lower() in STATUS_STATES
    if kind == "domains":
        return _DOMAIN.fullmatch(normal_domain(item)) is not None
    return True


def _item_words(kind: str) -> str:
    return {
        "labels": "a label name",
        "states": "one of " + ", ".join(sorted(STATUS_STATES)),
        "paths": "a path or pattern",
        "contexts": "a status context name or pattern such as ci/*",
        "domains": "a domain name such as github.com",
    }[kind]


def _unknown(path: str, keys: tuple[Any, ...], known: Sequence[str]) -> PolicyProblem:
    close = difflib.get_close_matches(str(keys[-1]), known, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    message = f"unknown key, ignored; {hint}known keys are {', '.join(sorted(known))}"
    return PolicyProblem(path, message, False, keys)
