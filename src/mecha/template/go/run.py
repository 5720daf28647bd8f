"""Running a parsed Go template against an event's data.

Values are looked up in mappings only (no attributes, no methods), so a template can
read the data it is given and nothing else. Outside the condition of an ``if``, ``with``
or ``else if``, a key the data does not have raises ``MissingKey`` naming the whole
path (``.pr.title``) and the line; inside such a condition it is simply empty (false).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mecha.errors import MissingKey, TemplateError
from mecha.template.go.fmt import go_type, show, sorted_keys, sprint, sprint_one, sprintf, sprintln
from mecha.template.go.lex import error
from mecha.template.go.parse import Action, Branch, Command, Func, Literal, Node, Path, Pipe, Text

_NOTHING: Any = object()
_SCALARS = {"bool", "int", "float64", "string"}
_ORDERED = {"int", "float64", "string"}


class _Jump(Exception):
    """``{{break}}`` (``stop``) or ``{{continue}}`` leaving a range body."""

    def __init__(self, stop: bool) -> None:
        super().__init__()
        self.stop = stop


@dataclass(slots=True)
class _State:
    variables: list[tuple[str, Any]]
    out: list[str] = field(default_factory=list)
    guard: bool = False
    #: where ``.`` is in the data, for messages: "" at the top, ".pr.files[1]" in a range
    scope: str = ""


def execute(nodes: tuple[Node, ...], data: Mapping[str, Any]) -> str:
    """The text the template produces for ``data``."""
    state = _State([("$", data)])
    _walk(nodes, data, state)
    return "".join(state.out)


def truth(value: Any) -> bool:
    """Go's truth: false, 0, empty text, empty list or mapping and null are false."""
    if value is None or isinstance(value, bool | int | float | str | list | tuple | Mapping):
        return bool(value)
    return True


def _walk(nodes: tuple[Node, ...], dot: Any, state: _State) -> None:
    for node in nodes:
        if isinstance(node, Text):
            state.out.append(node.text)
        elif isinstance(node, Action):
            value = _pipe(node.pipe, dot, state)
            if not node.pipe.decl:
                state.out.append(show(value))
        elif isinstance(node, Branch):
            mark, scope = len(state.variables), state.scope
            try:
                _branch(node, dot, state)
            finally:
                del state.variables[mark:]
                state.scope = scope
        else:
            raise _Jump(node.kind == "break")


def _branch(node: Branch, dot: Any, state: _State) -> None:
    if node.kind == "range":
        _range(node, dot, state)
        return
    saved, state.guard = state.guard, True
    try:
        value = _pipe(node.pipe, dot, state)
    finally:
        state.guard = saved
    if truth(value) and node.kind == "with":
        state.scope = _scope(node.pipe, state)
        _walk(node.body, value, state)
    elif truth(value):
        _walk(node.body, dot, state)
    else:
        _walk(node.orelse, dot, state)


def _range(node: Branch, dot: Any, state: _State) -> None:
    pipe = node.pipe
    value = _pipe(pipe, dot, state, declare=False)
    items = _items(value, pipe.line)
    if not pipe.assign:
        state.variables.extend((name, value) for name in pipe.decl)
    if not items:
        _walk(node.orelse, dot, state)
        return
    mark, scope = len(state.variables), _scope(pipe, state)
    for key, elem in items:
        state.scope = f"{scope}[{key}]" if isinstance(key, int) else f"{scope}.{key}"
        values = (elem,) if len(pipe.decl) == 1 else (key, elem)
        for name, var in zip(pipe.decl, values, strict=False):
            _set(state, name, var, mark)
        try:
            _walk(node.body, elem, state)
        except _Jump as jump:
            if jump.stop:
                break
        finally:
            del state.variables[mark:]


def _scope(pipe: Pipe, state: _State) -> str:
    """Where the value of a with/range pipeline is in the data, as a path."""
    head = pipe.cmds[0].args[0]
    if len(pipe.cmds) > 1 or len(pipe.cmds[0].args) > 1 or not isinstance(head, Path):
        return f"(the value on template line {pipe.line})"
    if head.start != ".":
        return head.text
    return state.scope + ("" if head.text == "." else head.text)


def _items(value: Any, line: int) -> list[tuple[Any, Any]]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [(key, value[key]) for key in sorted_keys(value)]
    if isinstance(value, list | tuple):
        return list(enumerate(value))
    raise error(line, f"range can't iterate over {sprint_one(value)} ({go_type(value)})")


def _set(state: _State, name: str, value: Any, below: int | None = None) -> None:
    """Give the nearest variable called ``name`` (under ``below``) a new value."""
    for i in range(len(state.variables) if below is None else below, 0, -1):
        if state.variables[i - 1][0] == name:
            state.variables[i - 1] = (name, value)
            return
    state.variables.append((name, value))


def _pipe(pipe: Pipe, dot: Any, state: _State, *, declare: bool = True) -> Any:
    value = _NOTHING
    for cmd in pipe.cmds:
        value = _command(cmd, dot, value, state)
    for name in pipe.decl if declare else ():
        if pipe.assign:
            _set(state, name, value)
        else:
            state.variables.append((name, value))
    return value


def _command(cmd: Command, dot: Any, final: Any, state: _State) -> Any:
    head = cmd.args[0]
    if isinstance(head, Func):
        thunks = [_thunk(arg, dot, state, cmd.line) for arg in cmd.args[1:]]
        if final is not _NOTHING:
            thunks.append(lambda: final)
        return _call(head.name, thunks, cmd, state)
    return _operand(head, dot, state, cmd.line)


def _thunk(arg: Any, dot: Any, state: _State, line: int) -> Callable[[], Any]:
    return lambda: _operand(arg, dot, state, line)


def _operand(arg: Any, dot: Any, state: _State, line: int) -> Any:
    if isinstance(arg, Literal):
        return arg.value
    if isinstance(arg, Pipe):
        return _pipe(arg, dot, state)
    if isinstance(arg, Func):
        return _call(arg.name, [], Command((arg,), line), state)
    return _path(arg, dot, state, line)


def _path(path: Path, dot: Any, state: _State, line: int) -> Any:
    """``.a.b``, ``$x.a`` or ``(pipe).a``: a walk through mappings."""
    if isinstance(path.start, Pipe):
        value = _pipe(path.start, dot, state)
    elif path.start == ".":
        value = dot
    else:
        value = next((v for n, v in reversed(state.variables) if n == path.start), _NOTHING)
        if value is _NOTHING:
            raise error(line, f"{path.start} has no value here")
    for name in path.names:
        if isinstance(value, Mapping) and name in value:
            value = value[name]
        elif value is not None and not isinstance(value, Mapping):
            raise error(line, f"can't read .{name} of {go_type(value)} in {path.text}")
        elif state.guard:
            return None
        else:
            full = state.scope + path.text if path.start == "." else ""
            full = path.text[1:] if path.start == "$" else full
            raise _missing(path.text, line, full)
    return value


def _missing(text: str, line: int, full: str = "") -> MissingKey:
    """``text`` as written in the template; ``full`` the path from the top, if different."""
    that_is = f" (that is {full})" if full and full != text else ""
    return MissingKey(
        full or text,
        f"template line {line}: the template uses {text}{that_is}, which this event does not have",
        hint="guard it with {{if " + text + "}}…{{end}}, or filter the rule to events that have it",
    )


# ---------------------------------------------------------------- functions


def _call(name: str, thunks: list[Callable[[], Any]], cmd: Command, state: _State) -> Any:
    if name in ("and", "or"):
        value = None
        for thunk in thunks:
            value = thunk()
            if truth(value) == (name == "or"):
                return value
        return value
    args = [thunk() for thunk in thunks]
    try:
        return _FUNCTIONS[name](args)
    except _NoKey:
        if state.guard:
            return None
        raise _missing(" ".join(arg.text for arg in cmd.args), cmd.line) from None
    except _Refused as refused:
        raise error(cmd.line, f"{name}: {refused}") from None


class _Refused(TemplateError):
    """A function cannot work with the values it was given."""


class _NoKey(TemplateError):
    """``index`` asked a mapping (or null) for a key it does not have."""


def _compare(a: Any, b: Any, ordered: bool) -> None:
    """Refuse what Go refuses: different kinds, or kinds that cannot be compared."""
    kinds = {go_type(a), go_type(b)}
    allowed = _ORDERED if ordered else _SCALARS
    if not kinds <= allowed:
        raise _Refused(f"can't compare {go_type(a)} with {go_type(b)}")
    if len(kinds) > 1:
        raise _Refused(f"incompatible types for comparison: {go_type(a)} and {go_type(b)}")


def _equal(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    _compare(a, b, ordered=False)
    return bool(a == b)


def _order(a: Any, b: Any, want: tuple[int, ...]) -> bool:
    """Whether ``a`` is below (-1), equal to (0) or above (1) ``b`` as ``want`` says.

    A null (a key the event does not have, in a condition) is not in order with anything.
    """
    if a is None or b is None:
        return False
    _compare(a, b, ordered=True)
    return (int(a > b) - int(a < b)) in want


def _length(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, list | tuple | Mapping):
        return len(value)
    raise _Refused(f"len of {go_type(value)}")


def _index(args: list[Any]) -> Any:
    value = args[0]
    for key in args[1:]:
        if isinstance(value, Mapping):
            if key not in value:
                raise _NoKey()
            value = value[key]
        elif isinstance(value, list | tuple | str):
            if not isinstance(key, int) or isinstance(key, bool):
                raise _Refused(f"cannot index {go_type(value)} with {go_type(key)}")
            items = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
            if not 0 <= key < len(items):
                raise _Refused(f"index out of range: {key}")
            value = items[key]
        elif value is None:
            raise _NoKey()
        else:
            raise _Refused(f"can't index item of type {go_type(value)}")
    return value


def _printf(args: list[Any]) -> str:
    if not isinstance(args[0], str):
        raise _Refused(f"the format must be text, not {go_type(args[0])}")
    return sprintf(args[0], args[1:])


_FUNCTIONS: dict[str, Callable[[list[Any]], Any]] = {
    "not": lambda args: not truth(args[0]),
    "eq": lambda args: any(_equal(args[0], other) for other in args[1:]),
    "ne": lambda args: not _equal(args[0], args[1]),
    "lt": lambda args: _order(args[0], args[1], (-1,)),
    "le": lambda args: _order(args[0], args[1], (-1, 0)),
    "gt": lambda args: _order(args[0], args[1], (1,)),
    "ge": lambda args: _order(args[0], args[1], (1, 0)),
    "len": lambda args: _length(args[0]),
    "index": _index,
    "print": sprint,
    "println": sprintln,
    "printf": _printf,
}
