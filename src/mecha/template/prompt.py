"""Prompt templates: an event rule's ``prompt:`` rendered against an event's data.

Two syntaxes are accepted and told apart when the template is compiled:

* a template with ``{%`` or ``{#`` is Jinja2;
* otherwise, one that parses as a Go ``text/template`` is Go (``{{.diff}}``,
  ``{{ .pr.title }}``, ``{{if .draft}}…{{end}}``): what existing worker files use;
* otherwise, one with Go-looking actions (``{{.``, ``{{ .``, ``{{$``, ``{{/*``,
  ``{{if``, ``{{- range``, ``{{end``, …) is a Go template with a mistake, and refused
  with it. (Checked before trying Jinja2, which would read ``{{if .x}}`` as the
  attribute ``x`` of a variable ``if``.)
* otherwise it is Jinja2 (``{{ title }}``, no dot), refused with Jinja2's mistake if any.

Go templates are parsed and run by Mecha itself (``mecha.template.go.parse*``), not translated
to Jinja2: text, ``.a.b`` paths, ``.``, ``$``, ``$.x``, variables, ``if``/``else if``/
``else``, ``range`` (with ``$i, $v :=``, ``else``, ``break``, ``continue``), ``with``,
comments, ``{{- -}}`` trimming, literals, pipelines and the functions ``and or not eq ne
lt le gt ge len index print printf println``. Values print as Go's ``fmt`` prints them.

Jinja2 runs in an ``ImmutableSandboxedEnvironment`` (no escaping, trailing newline
kept): it reads the event's values but cannot reach Python internals (``__class__``,
``__globals__``) or change anything; trying is a ``TemplateError``.

Missing keys: printing, ranging over or otherwise using a key the event does not have
raises ``MissingKey`` naming it (``.pr.title``) and the line, which fails that worker's
task. Inside the condition of ``{{if}}``, ``{{else if}}`` and ``{{with}}`` (including the
arguments of ``not``/``and``/``or`` and comparisons there) a missing key is simply empty,
so ``{{if .diff}}…{{end}}`` is a guard. Go's text/template (and so the Go version of
Mecha) refused even that; we chose the guard. In Jinja2 an undefined name is false in
``{% if %}`` and works with ``is defined`` and ``default``.

The event's text is data, never template code: a body holding ``{{.secret}}`` or
``{% for %}`` is printed as it is. Compiling is pure (no I/O) and cached.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, NoReturn

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mecha.errors import MissingKey, TemplateError
from mecha.template.go.parse import parse as parse_go
from mecha.template.go.run import execute as execute_go

__all__ = ["PromptTemplate", "Syntax", "compile_template"]

Syntax = Literal["go", "jinja"]
_GO_LOOKING = re.compile(
    r"\{\{-?\s*(?:[.$]|/\*|(?:if|else|end|range|with|break|continue|define|template|block)\b)"
)
_JINJA_HINT = "it was read as Jinja2 ({{ name }}, {% if %}); Go templates write {{.name}}"
_UNSAFE_HINT = "a prompt template can read the event's values, nothing else"


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    """A compiled prompt template: its text, its syntax, and ``render(data)``."""

    source: str
    syntax: Syntax
    renderer: Callable[[Mapping[str, Any]], str] = field(repr=False, compare=False)

    def render(self, data: Mapping[str, Any]) -> str:
        """The prompt for an event's data; MissingKey or TemplateError if it cannot be made."""
        return self.renderer(data)


def compile_template(text: str) -> PromptTemplate:
    """Detect the syntax and compile ``text`` once; TemplateError naming the line if wrong."""
    return _compile(text)


@lru_cache(maxsize=512)
def _compile(text: str) -> PromptTemplate:
    if "{%" in text or "{#" in text:
        return _compile_jinja(text)
    try:
        return _compile_go(text)
    except TemplateError:
        if _GO_LOOKING.search(text):
            raise
    return _compile_jinja(text)


# ---------------------------------------------------------------- Go


def _compile_go(text: str) -> PromptTemplate:
    try:
        nodes = parse_go(text)
    except RecursionError:
        raise TemplateError("the template nests too deeply") from None

    def render(data: Mapping[str, Any]) -> str:
        try:
            return execute_go(nodes, data)
        except RecursionError:
            raise TemplateError("the template or the event's data nests too deeply") from None

    return PromptTemplate(text, "go", render)


# ---------------------------------------------------------------- Jinja2


class _Undefined(jinja2.ChainableUndefined):
    """A name the event does not have: false in ``{% if %}``, MissingKey when used."""

    __slots__ = ()

    def _fail_with_undefined_error(self, *args: object, **kwargs: object) -> NoReturn:
        if isinstance(self._undefined_exception, type) and issubclass(
            self._undefined_exception, SecurityError
        ):
            raise SecurityError(self._undefined_message)
        raise MissingKey(str(self._undefined_name or "a value"))

    __str__ = __iter__ = __len__ = __call__ = _fail_with_undefined_error
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _fail_with_undefined_error
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = _fail_with_undefined_error
    __mod__ = __rmod__ = __pos__ = __neg__ = __pow__ = __rpow__ = _fail_with_undefined_error
    __lt__ = __le__ = __gt__ = __ge__ = __int__ = __float__ = _fail_with_undefined_error


_JINJA = ImmutableSandboxedEnvironment(
    autoescape=False, keep_trailing_newline=True, undefined=_Undefined
)


def _compile_jinja(text: str) -> PromptTemplate:
    try:
        template = _JINJA.from_string(text)
    except jinja2.TemplateSyntaxError as exc:
        message = f"template line {exc.lineno}: {exc.message}"
        raise TemplateError(message, hint=_JINJA_HINT) from None
    except (jinja2.TemplateError, RecursionError) as exc:
        raise TemplateError(f"the template cannot be compiled: {exc}", hint=_JINJA_HINT) from None

    def render(data: Mapping[str, Any]) -> str:
        try:
            return template.render(dict(data))
        except MissingKey as exc:
            raise _missing(exc.key, _where(exc)) from None
        except SecurityError as exc:
            message = f"{_where(exc)}the template tried something unsafe: {exc}"
            raise TemplateError(message, hint=_UNSAFE_HINT) from None
        except Exception as exc:
            raise TemplateError(f"{_where(exc)}{type(exc).__name__}: {exc}") from None

    return PromptTemplate(text, "jinja", render)


def _missing(key: str, where: str) -> MissingKey:
    return MissingKey(
        key,
        f"{where}the template uses {key!r}, which this event does not have",
        hint="guard it with {% if " + key + " is defined %}…{% endif %} or use "
        "{{ " + key + ' | default("") }}',
    )


def _where(exc: BaseException) -> str:
    """``template line N: `` from the frames Jinja2 gives its templates, or nothing."""
    line, frame = 0, exc.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code.co_filename == "<template>":
            line = frame.tb_lineno
        frame = frame.tb_next
    return f"template line {line}: " if line else ""
