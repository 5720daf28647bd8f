"""How Go templates print values: ``fmt.Sprint``, ``Sprintln`` and ``Sprintf``, as Go does.

``true``/``false`` for booleans, ``[a b]`` for lists, ``map[k:v]`` for mappings (keys
sorted), floats in Go's shortest form (``1.5``, ``1e+06``), ``<nil>`` for null inside
other values and ``<no value>`` for a null printed by an action. ``printf`` knows the
verbs %v %s %q %d %t %f %e %g %x %X %o %b %c %U %T and %%, with flags, width and
precision; a verb that does not fit its value prints Go's ``%!d(string=abc)``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

_QUOTE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
}
_DIRECTIVE = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d*))?(.?)", re.DOTALL)
_TOO_LARGE = 1_000_000
_INT_BASES = {"d": "d", "b": "b", "o": "o", "O": "o", "x": "x", "X": "X"}
_INT_PREFIXES = {"b": "0b", "o": "0", "O": "0o", "x": "0x", "X": "0X"}


def go_type(value: Any) -> str:
    """Go's name for the type of a value, as %T prints it."""
    if value is None:
        return "<nil>"
    for kind, name in ((bool, "bool"), (int, "int"), (float, "float64"), (str, "string")):
        if isinstance(value, kind):
            return name
    if isinstance(value, list | tuple):
        return "[]interface {}"
    if isinstance(value, Mapping):
        return "map[string]interface {}"
    return type(value).__name__


def show(value: Any) -> str:
    """What ``{{.x}}`` prints: ``<no value>`` for null, else ``%v``."""
    return "<no value>" if value is None else sprint_one(value)


def sprint_one(value: Any) -> str:
    """``%v`` of one value."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, list | tuple):
        return "[" + " ".join(sprint_one(item) for item in value) + "]"
    if isinstance(value, Mapping):
        pairs = (f"{sprint_one(k)}:{sprint_one(value[k])}" for k in sorted_keys(value))
        return "map[" + " ".join(pairs) + "]"
    return str(value)


def sorted_keys(mapping: Mapping[Any, Any]) -> list[Any]:
    """A mapping's keys in order, as Go ranges over and prints maps."""
    try:
        return sorted(mapping)
    except TypeError:
        return sorted(mapping, key=repr)


def go_float(value: float) -> str:
    """A float as Go's %v prints it: shortest digits, exponent below 1e-4 or from 1e+06."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    exact = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(str(d) for d in exact.digits)
    assert isinstance(exact.exponent, int)
    exponent = len(digits) - 1 + exact.exponent
    if exponent < -4 or exponent >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if exponent < 0:
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    whole, fraction = digits[: exponent + 1].ljust(exponent + 1, "0"), digits[exponent + 1 :]
    return sign + whole + ("." + fraction if fraction else "")


def quote(text: str, mark: str = '"') -> str:
    """Go's strconv.Quote: escapes for control and unprintable characters."""
    out = [mark]
    for char in text:
        if char == mark or char in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES.get(char, "\\" + char))
        elif char.isprintable() or char == " ":
            out.append(char)
        else:
            code = ord(char)
            width = 2 if code < 0x80 else 4 if code < 0x10000 else 8
            out.append(("\\x", "\\u", "\\U")[(2, 4, 8).index(width)] + f"{code:0{width}x}")
    out.append(mark)
    return "".join(out)


def sprint(values: list[Any]) -> str:
    """Go's fmt.Sprint: a space between two operands when neither is a string."""
    out: list[str] = []
    for i, value in enumerate(values):
        if i and not isinstance(value, str) and not isinstance(values[i - 1], str):
            out.append(" ")
        out.append(sprint_one(value))
    return "".join(out)


def sprintln(values: list[Any]) -> str:
    """Go's fmt.Sprintln: spaces between all operands and a newline after them."""
    return " ".join(sprint_one(value) for value in values) + "\n"


def sprintf(template: str, values: list[Any]) -> str:
    """Go's fmt.Sprintf for the common verbs."""
    out: list[str] = []
    args, pos = list(values), 0
    for match in _DIRECTIVE.finditer(template):
        out.append(template[pos : match.start()])
        pos = match.end()
        flags, width_text, prec_text, verb = match.groups()
        if verb == "%":
            out.append("%")
            continue
        width, flags = _star(width_text, args, out, flags, "BADWIDTH")
        prec, _ = _star(prec_text, args, out, "", "BADPREC")
        if not verb:
            out.append("%!(NOVERB)")
        elif not args:
            out.append(f"%!{verb}(MISSING)")
        else:
            out.append(_pad(_format(verb, flags, prec, args.pop(0)), width, flags))
    out.append(template[pos:])
    if args:
        extra = ", ".join(f"{go_type(a)}={sprint_one(a)}" for a in args)
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _star(
    text: str | None, args: list[Any], out: list[str], flags: str, bad: str
) -> tuple[int | None, str]:
    """A width or precision: digits, or ``*`` taking the next argument."""
    if text is None:
        return None, flags
    if text == "*":
        value = args.pop(0) if args else None
        if not isinstance(value, int) or isinstance(value, bool) or abs(value) > _TOO_LARGE:
            out.append(f"%!({bad})")
            return None, flags
        return (abs(value), flags + "-") if value < 0 else (value, flags)
    number = int(text or "0")
    if number > _TOO_LARGE:
        out.append(f"%!({bad})")
        return None, flags
    return number, flags


def _pad(body: str, width: int | None, flags: str) -> str:
    if width is None or len(body) >= width:
        return body
    if "-" in flags:
        return body.ljust(width)
    if "0" in flags:
        sign = body[0] if body[:1] in ("+", "-", " ") else ""
        return sign + body[len(sign) :].rjust(width - len(sign), "0")
    return body.rjust(width)


def _format(verb: str, flags: str, prec: int | None, value: Any) -> str:
    """One directive's text, or Go's ``%!verb(type=value)`` when the verb does not fit."""
    for fits, render in _VERBS.get(verb, ()):
        if fits(value):
            return render(verb, flags, prec, value)
    shown = "<nil>" if value is None else f"{go_type(value)}={sprint_one(value)}"
    return f"%!{verb}({shown})"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _sign(flags: str, negative: bool) -> str:
    return "-" if negative else "+" if "+" in flags else " " if " " in flags else ""


def _text(verb: str, flags: str, prec: int | None, value: Any) -> str:
    text = value if isinstance(value, str) else sprint_one(value)
    return text[:prec] if prec is not None else text


def _quoted(verb: str, flags: str, prec: int | None, value: Any) -> str:
    if isinstance(value, str):
        return quote(value[:prec] if prec is not None else value)
    return quote(chr(value), "'") if 0 <= value <= 0x10FFFF else "'\ufffd'"


def _integer(verb: str, flags: str, prec: int | None, value: Any) -> str:
    digits = format(abs(value), _INT_BASES[verb])
    digits = digits.zfill(prec) if prec is not None else digits
    prefix = _INT_PREFIXES.get(verb, "") if "#" in flags or verb == "O" else ""
    return _sign(flags, value < 0) + prefix + digits


def _float(verb: str, flags: str, prec: int | None, value: Any) -> str:
    if not math.isfinite(value) or (prec is None and verb in "gG"):
        text = go_float(abs(value))
        return _sign(flags, value < 0) + (text.upper() if verb == "G" else text)
    text = format(abs(value), f".{6 if prec is None else prec}{verb}")
    return _sign(flags, math.copysign(1, value) < 0) + text


def _hex_text(verb: str, flags: str, prec: int | None, value: Any) -> str:
    text = str(value).encode("utf-8", "surrogatepass").hex()
    return text if verb == "x" else text.upper()


def _char(verb: str, flags: str, prec: int | None, value: Any) -> str:
    if verb == "U":
        return f"U+{value:04X}"
    return chr(value) if 0 <= value <= 0x10FFFF else "\ufffd"


_Fits = Callable[[Any], bool]
_Render = Callable[[str, str, "int | None", Any], str]
_ANY: _Fits = lambda value: True  # noqa: E731
_STR: _Fits = lambda value: isinstance(value, str)  # noqa: E731
_FLOAT: _Fits = lambda value: isinstance(value, float)  # noqa: E731
_BOOL: _Fits = lambda value: isinstance(value, bool)  # noqa: E731
_SEQ: _Fits = lambda value: isinstance(value, str | list | tuple | Mapping)  # noqa: E731
_VERBS: dict[str, tuple[tuple[_Fits, _Render], ...]] = {
    "v": ((_ANY, _text),),
    "s": ((_SEQ, _text),),
    "q": ((_STR, _quoted), (_is_int, _quoted)),
    "t": ((_BOOL, _text),),
    "c": ((_is_int, _char),),
    "U": ((_is_int, _char),),
    "T": ((_ANY, lambda verb, flags, prec, value: go_type(value)),),
    **{verb: ((_is_int, _integer),) for verb in "dboO"},
    **{verb: ((_is_int, _integer), (_STR, _hex_text)) for verb in "xX"},
    **{verb: ((_FLOAT, _float),) for verb in "eEfFgG"},
}
