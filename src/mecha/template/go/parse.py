"""Go ``text/template`` syntax: the parse tree and the parser.

The tree is plain frozen data; ``mecha.template.go.run`` executes it. Literal text is
kept as text and never looked at again, so nothing in it is read as template code.
The checks Go makes when a template runs (functions exist, get the right number of
arguments, only functions take arguments) are made here, when the template is loaded.
Every mistake is a ``TemplateError`` naming the line within the template.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mecha.errors import TemplateError
from mecha.template.go.lex import Token, error, lex, number, unquote

#: name → (fewest, most) arguments; most None means any number
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "and": (1, None),
    "or": (1, None),
    "not": (1, 1),
    "eq": (2, None),
    "ne": (2, 2),
    "lt": (2, 2),
    "le": (2, 2),
    "gt": (2, 2),
    "ge": (2, 2),
    "len": (1, 1),
    "index": (1, None),
    "print": (0, None),
    "println": (0, None),
    "printf": (1, None),
}
_FUNCTION_HINT = "the functions are " + ", ".join(sorted(FUNCTIONS))
_CLOSERS = ("pipe", "right", "rparen")


@dataclass(frozen=True, slots=True)
class Literal:
    """A string, number, boolean or nil written in the template."""

    value: object
    text: str


@dataclass(frozen=True, slots=True)
class Path:
    """``.a.b`` (start "."), ``$x.a`` (start "$x") or ``(pipe).a`` (start a Pipe)."""

    start: str | Pipe
    names: tuple[str, ...]
    text: str


@dataclass(frozen=True, slots=True)
class Func:
    """A function name at the head of a command."""

    name: str
    text: str


@dataclass(frozen=True, slots=True)
class Command:
    """Operands separated by spaces: a function call, or a single value."""

    args: tuple[Operand, ...]
    line: int


@dataclass(frozen=True, slots=True)
class Pipe:
    """``[$x :=] cmd | cmd ...``; each later command gets the previous result last."""

    line: int
    decl: tuple[str, ...]
    assign: bool
    cmds: tuple[Command, ...]

    @property
    def text(self) -> str:
        return "(...)"


Operand = Literal | Path | Func | Pipe


@dataclass(frozen=True, slots=True)
class Text:
    """Literal text, printed as it is."""

    text: str


@dataclass(frozen=True, slots=True)
class Action:
    """``{{pipe}}``: prints the value, unless the pipe declares a variable."""

    pipe: Pipe


@dataclass(frozen=True, slots=True)
class Branch:
    """``{{if}}``, ``{{with}}`` or ``{{range}}`` with its body and else-part."""

    kind: str
    pipe: Pipe
    body: tuple[Node, ...]
    orelse: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Jump:
    """``{{break}}`` or ``{{continue}}`` inside a range."""

    kind: str


Node = Text | Action | Branch | Jump


def parse(text: str) -> tuple[Node, ...]:
    """The parse tree of a Go template; TemplateError naming the line if it has mistakes."""
    return _Parser(lex(text)).parse()


@dataclass(slots=True)
class _End:
    """An ``{{end}}`` or ``{{else}}`` (``chain``: the if/with of ``{{else if}}``)."""

    kind: str
    line: int
    chain: str = ""


def _braced(word: str) -> str:
    return "{{" + word + "}}"


@dataclass(slots=True)
class _Parser:
    """Recursive descent over the tokens, as Go's ``text/template/parse`` does it."""

    tokens: list[Token]
    pos: int = 0
    variables: list[str] = field(default_factory=lambda: ["$"])
    loops: int = 0

    def _skip(self, skip_space: bool) -> int:
        pos = self.pos
        while skip_space and self.tokens[pos].kind == "space":
            pos += 1
        return pos

    def peek(self, skip_space: bool = True) -> Token:
        return self.tokens[self._skip(skip_space)]

    def next(self, skip_space: bool = True) -> Token:
        pos = self._skip(skip_space)
        self.pos = pos + 1
        return self.tokens[pos]

    def parse(self) -> tuple[Node, ...]:
        body, end = self.items()
        if end is not None:
            raise error(end.line, f"unexpected {_braced(end.kind)}", "it closes nothing")
        return body

    def items(self) -> tuple[tuple[Node, ...], _End | None]:
        """Nodes up to the end of the text (None) or an ``{{end}}``/``{{else}}``."""
        nodes: list[Node] = []
        while True:
            token = self.next()
            if token.kind == "eof":
                return tuple(nodes), None
            if token.kind == "text":
                nodes.append(Text(token.text))
                continue
            item = self.action()
            if isinstance(item, _End):
                return tuple(nodes), item
            nodes.append(item)

    def action(self) -> Node | _End:
        """After ``{{``: a control structure, an end/else, or a pipeline to print."""
        token = self.peek()
        if token.kind != "keyword":
            return Action(self.pipeline("the action", "right"))
        self.next()
        word = token.text
        if word in ("if", "with", "range"):
            return self.branch(word, token.line)
        chain = self.peek()
        if word == "else" and chain.kind == "keyword" and chain.text in ("if", "with"):
            self.next()
            return _End("else", token.line, chain.text)
        if word in ("break", "continue") and not self.loops:
            raise error(token.line, f"{_braced(word)} outside {_braced('range')}")
        if word in ("define", "template", "block"):
            raise error(token.line, f"{_braced(word)} is not supported", "a prompt is one template")
        if self.next().kind != "right":
            raise error(token.line, f"{_braced(word)} takes nothing after it")
        return _End(word, token.line) if word in ("end", "else") else Jump(word)

    def branch(self, kind: str, line: int) -> Branch:
        """``{{if}}``/``{{with}}``/``{{range}}`` through its ``{{end}}``."""
        mark = len(self.variables)
        pipe = self.pipeline(_braced(kind), "right")
        self.loops += int(kind == "range")
        body, end = self.items()
        self.loops -= int(kind == "range")
        orelse: tuple[Node, ...] = ()
        if end is not None and end.chain:
            if end.chain != kind:
                raise error(end.line, f"{_braced('else ' + end.chain)} inside {_braced(kind)}")
            orelse = (self.branch(end.chain, end.line),)
        elif end is not None and end.kind == "else":
            orelse, end = self.items()
            if end is not None and end.kind != "end":
                raise error(end.line, f"a second {_braced('else')} in the {_braced(kind)}")
        if end is None:
            raise error(line, f"{_braced(kind)} has no {_braced('end')}", "close it with {{end}}")
        del self.variables[mark:]
        return Branch(kind, pipe, body, orelse)

    def pipeline(self, context: str, closer: str) -> Pipe:
        """``[$x :=] command | command ...`` up to ``closer`` (``}}`` or ``)``)."""
        line = self.peek().line
        decl, assign = self.declarations(context)
        cmds: list[Command] = []
        piped = True
        while piped:
            if self.peek().kind == closer:
                what = "a | with no command after it" if cmds else f"missing value for {context}"
                raise error(self.peek().line if cmds else line, what)
            cmd, piped = self.command(context, first=not cmds)
            cmds.append(cmd)
        token = self.next()
        if token.kind != closer:
            raise self.unexpected(token, context)
        return Pipe(line, tuple(decl), assign, tuple(cmds))

    def declarations(self, context: str) -> tuple[list[str], bool]:
        """``$x :=``, ``$x =`` or (in range) ``$i, $v :=``; nothing if the pipe has none."""
        start, names = self.pos, []
        while self.peek().kind == "variable":
            name, after = self.next().text, self.next()
            if after.kind in ("declare", "assign"):
                names.append(name)
                assign = after.kind == "assign"
                unknown = [n for n in names if n not in self.variables]
                if assign and unknown:
                    raise error(after.line, f"undefined variable {unknown[0]}")
                self.variables.extend([] if assign else names)
                return names, assign
            if after.kind != "comma":
                break
            if names or context != _braced("range"):
                raise error(after.line, f"too many declarations in {context}")
            names.append(name)
        if names:
            raise error(self.peek().line, f"{context} can only declare variables here")
        self.pos = start
        return [], False

    def command(self, context: str, *, first: bool) -> tuple[Command, bool]:
        """Operands separated by spaces up to ``|``, ``}}`` or ``)``; and whether ``|`` ended it."""
        line, args = self.peek().line, [self.operand(context)]
        while self.peek(skip_space=False).kind == "space" and self.peek().kind not in _CLOSERS:
            args.append(self.operand(context))
        token = self.peek()
        if token.kind not in _CLOSERS:
            raise self.unexpected(token, context)
        if token.kind == "pipe":
            self.next()
        return _checked(Command(tuple(args), line), first), token.kind == "pipe"

    def unexpected(self, token: Token, context: str) -> TemplateError:
        return error(token.line, f"unexpected {token.text!r} in {context}")

    def operand(self, context: str) -> Operand:
        """A term and any ``.field`` after it."""
        token = self.next()
        term = self.term(token, context)
        names: list[str] = []
        while self.peek(skip_space=False).kind == "field":
            names.append(self.next(skip_space=False).text[1:])
        if not names:
            return term
        chain = "".join("." + name for name in names)
        if isinstance(term, Path) and term.text != ".":
            return Path(term.start, term.names + tuple(names), term.text + chain)
        if isinstance(term, Pipe):
            return Path(term, tuple(names), f"(...){chain}")
        raise error(token.line, f"unexpected . after {term.text}")

    def term(self, token: Token, context: str) -> Operand:
        """One value: a function name, a path start, a literal or ``(pipeline)``."""
        kind, text = token.kind, token.text
        if kind == "word" and text not in FUNCTIONS:
            raise error(token.line, f'function "{text}" not defined', _FUNCTION_HINT)
        if kind == "variable" and text not in self.variables:
            raise error(token.line, f"undefined variable {text}")
        if kind == "lparen":
            return self.pipeline("a parenthesized pipeline", "rparen")
        term = _term(token)
        if term is None:
            raise self.unexpected(token, context)
        return term


def _term(token: Token) -> Literal | Path | Func | None:
    kind, text = token.kind, token.text
    if kind == "word":
        return Func(text, text)
    if kind in ("dot", "field", "variable"):
        names = (text[1:],) if kind == "field" else ()
        return Path("." if kind != "variable" else text, names, text)
    if kind == "literal":
        return Literal({"true": True, "false": False}.get(text), text)
    if kind in ("number", "char"):
        return Literal(number(token), text)
    if kind in ("string", "raw"):
        return Literal(unquote(token), text)
    return None


def _checked(cmd: Command, first: bool) -> Command:
    """Go's run-time checks on a command, made when the template is loaded."""
    head, line = cmd.args[0], cmd.line
    for arg in cmd.args[1:]:
        if isinstance(arg, Func) and FUNCTIONS[arg.name][0]:
            hint = f"call it in parentheses: ({arg.name} .x)"
            raise error(line, f"{arg.name} needs arguments here", hint)
    if isinstance(head, Func):
        fewest, most = FUNCTIONS[head.name]
        count = len(cmd.args) - 1 + (0 if first else 1)
        if count < fewest or (most is not None and count > most):
            want = f"{fewest}" if fewest == most else f"at least {fewest}"
            wrong = f"wrong number of arguments for {head.name}: want {want}, got {count}"
            raise error(line, wrong)
        return cmd
    if isinstance(head, Literal) and head.text == "nil" and len(cmd.args) == 1 and first:
        raise error(line, "nil is not a command")
    if len(cmd.args) > 1 or not first:
        raise error(
            line,
            f"{head.text} is not a function, so it cannot take arguments",
            'functions come first: {{printf "%s" .title}} or {{.title | printf "%s"}}',
        )
    return cmd
