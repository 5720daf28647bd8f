"""Recorded GitHub and GitLab webhook deliveries, shipped with Mecha.

``mecha event send --sample NAME`` posts one to a running server, and the tests replay them.
Each sample is ``<forge>/<name>.json`` (the body, byte for byte as the forge's documentation
published it) with ``<forge>/<name>.headers.json`` (its delivery headers, without a
signature: the body is signed when it is sent). A sample's name is the event type Mecha gives
the delivery (``pull_request.opened``, ``merge_request.open``, ``push``). README.md in this
folder says where each one comes from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from mecha.errors import UsageError

#: the forges samples are recorded for, in the order a name is looked for
FORGES = ("github", "gitlab")
#: the header that names the event, per forge
EVENT_HEADERS = {"github": "X-GitHub-Event", "gitlab": "X-Gitlab-Event"}
_HEADERS = ".headers.json"


@dataclass(frozen=True, slots=True)
class Sample:
    """One recorded delivery: its body bytes and the headers it came with."""

    forge: str
    name: str
    body: bytes
    #: as recorded (names as the forge spells them), no signature or token
    headers: dict[str, str]

    @property
    def event(self) -> str:
        """The forge's event header value (``pull_request``, ``Merge Request Hook``)."""
        wanted = EVENT_HEADERS[self.forge].lower()
        return next(value for key, value in self.headers.items() if key.lower() == wanted)


def names(forge: str) -> list[str]:
    """Every sample recorded for ``forge``, sorted (none for a forge without samples)."""
    if forge not in FORGES:
        return []
    return sorted(
        entry.name.removesuffix(".json")
        for entry in _folder(forge).iterdir()
        if entry.name.endswith(".json") and not entry.name.endswith(_HEADERS)
    )


def load(forge: str, name: str) -> Sample:
    """Sample ``name`` of ``forge``; ``UsageError`` naming the samples there are if none."""
    if name not in names(forge):
        raise _unknown(name, forge)
    folder = _folder(forge)
    body = folder.joinpath(f"{name}.json").read_bytes()
    recorded = json.loads(folder.joinpath(f"{name}{_HEADERS}").read_text(encoding="utf-8"))
    headers = {str(key): str(value) for key, value in recorded.items()}
    return Sample(forge=forge, name=name, body=body, headers=headers)


def find(name: str, forge: str | None = None) -> Sample:
    """Sample ``name`` of ``forge``, or (no forge given) of the first forge that has one."""
    if forge is not None:
        if forge not in FORGES:
            raise UsageError(
                f'there are no samples for the source "{forge}"',
                hint="samples exist for github and gitlab; send your own payload with "
                f"`mecha event send FILE --source {forge} --event TYPE`",
            )
        return load(forge, name)
    for candidate in FORGES:
        if name in names(candidate):
            return load(candidate, name)
    raise _unknown(name, None)


def listing() -> str:
    """``github: a, b; gitlab: c`` for messages."""
    return "; ".join(f"{forge}: {', '.join(names(forge))}" for forge in FORGES)


def _unknown(name: str, forge: str | None) -> UsageError:
    elsewhere = [other for other in FORGES if other != forge and name in names(other)]
    if forge is not None and elsewhere:
        return UsageError(
            f'there is no {forge} sample "{name}"; {elsewhere[0]} has one',
            hint=f"drop --source {forge}, or choose one of the {forge} samples: "
            f"{', '.join(names(forge))}",
        )
    where = f"{forge} sample" if forge else "sample"
    return UsageError(
        f'there is no {where} "{name}"',
        hint=f"the samples are {listing()} (`mecha event samples` describes them)",
    )


def _folder(forge: str) -> Traversable:
    return resources.files(__name__).joinpath(forge)
