"""The building blocks of a worker file's model: strict sections, YAML scalars read as
text (as Go's decoding gave them), one-or-many lists, and failures whose message and hint
reach the user unchanged (``mecha.worker.parser`` adds the file:line:column)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema
from pydantic_core import PydanticCustomError

from mecha.duration import format_duration, parse_duration
from mecha.errors import TemplateError
from mecha.numbers import whole
from mecha.template.prompt import compile_template


def invalid(message: str, hint: str = "") -> PydanticCustomError:
    """A validation failure whose message and hint reach the user unchanged."""
    return PydanticCustomError("mecha_invalid", "{message}", {"message": message, "hint": hint})


def scalar_text(value: Any) -> Any:
    """YAML scalars as text, as Go's map[string]string decoding gave them (1 → "1")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _one_or_many(value: Any) -> Any:
    """A single string where a list is expected becomes a list of one."""
    return [value] if isinstance(value, str) else value


#: a whole number; ``500.0`` is 500, as Go's decoding read it (``500.5`` stays a mistake)
Whole = Annotated[int, BeforeValidator(whole)]
Text = Annotated[
    str,
    BeforeValidator(scalar_text),
    WithJsonSchema({"type": ["string", "number", "boolean"]}),
]
DurationText = Annotated[
    str,
    BeforeValidator(scalar_text),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"const": 0}]}),
]
TextList = Annotated[
    list[str],
    BeforeValidator(_one_or_many),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
]


class Section(BaseModel):
    """Every part of a worker file: unknown keys are mistakes, types are not guessed."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def checked_template(value: str) -> str:
    """``value`` if it compiles as a prompt template (Go or Jinja2), else a failure naming
    the template's line."""
    try:
        compile_template(value)
    except TemplateError as exc:
        raise invalid(exc.message, exc.hint) from None
    return value


def checked_duration(value: str, *, most: float | None = None, example: str = "10m") -> float:
    """The seconds of a duration key's ``value``; a failure saying what is wrong if it is
    not a duration, is negative, or is above ``most`` seconds (None: no bound)."""
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise invalid(str(exc)) from None
    if seconds < 0:
        raise invalid(f'"{value}" is negative', f"write a positive duration, e.g. {example}")
    if most is not None and seconds > most:
        raise invalid(
            f'"{value}" is out of range',
            f"write a duration from 0 to {format_duration(most)}, e.g. {example}",
        )
    return seconds
