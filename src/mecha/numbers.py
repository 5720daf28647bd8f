"""Numbers as files and payloads written for the Go program give them (pure).

Go reads every JSON and YAML number into a ``float64`` when it decodes into ``any``, so
upstream took ``max_length: 500.0`` as 500 and printed a payload's ``5.0`` as ``5``.
Python keeps ``500.0`` a float; these helpers give it the meaning a user of the Go
program expects:

* ``whole`` makes a whole-valued float the int it means (``500.0`` → ``500``) and leaves
  every other value as it is, so ``500.5`` still fails an integer check, at its place;
* ``attribute_number`` is a payload's number as an event attribute: a whole number is an
  int (``5.0`` → ``5``), any other is the text Go's ``fmt.Sprint`` prints (``0.25``,
  ``1.5e+07``), so filters and templates see what they saw upstream.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

#: the largest whole float kept as an int attribute (SQLite's and PostgreSQL's bigint)
_LARGEST = 2**63 - 1
#: Go's shortest ``'g'`` format writes an exponent from this power of ten up
_EXPONENT_FROM = 6


def whole(value: Any) -> Any:
    """``value`` as an int if it is a whole-valued float (``500.0``), else unchanged."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def attribute_number(value: float) -> int | str:
    """A payload's number as an event attribute: an int when whole, else Go's text."""
    if isinstance(value, int):
        return value
    if value.is_integer() and abs(value) <= _LARGEST:
        return int(value)
    return go_float_text(value)


def go_float_text(value: float) -> str:
    """``value`` as Go's ``fmt.Sprint`` prints a ``float64`` (``%v``, that is ``strconv``'s
    ``'g'`` at the shortest precision): the fewest digits that read back the same, in
    exponent form when the exponent is below -4 or 6 and above (``1e-05``, ``1.5e+07``)."""
    if not math.isfinite(value):  # JSON has none; YAML's .inf and .nan do
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)  # finite
    shown = "".join(map(str, digits)).rstrip("0") or "0"
    exponent += len(digits) - len(shown)  # the zeros stripped
    minus = "-" if sign else ""
    point = len(shown) + exponent  # where the decimal point goes, from the first digit
    if shown == "0" or -4 <= point - 1 < _EXPONENT_FROM:
        return minus + _plain(shown, point)
    power = point - 1
    mantissa = shown[0] + ("." + shown[1:] if len(shown) > 1 else "")
    return f"{minus}{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"


def _plain(shown: str, point: int) -> str:
    """The digits ``shown`` with the decimal point ``point`` digits from the first."""
    if shown == "0":
        return "0"
    if point <= 0:
        return f"0.{'0' * -point}{shown}"
    if point >= len(shown):
        return shown + "0" * (point - len(shown))
    return f"{shown[:point]}.{shown[point:]}"
