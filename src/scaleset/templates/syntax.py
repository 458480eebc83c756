"""ARM template expressions: which strings are expressions, and their syntax tree.

A JSON string is an expression when it starts with ``[`` and ends with ``]``;
``[[`` at the start escapes a literal ``[``. Inside: function calls
(``name(arg, …)``, names case-insensitive), string literals in single quotes
(``''`` is a quote), integers, member access (``.name``) and indexing
(``[expr]``). The grammar is given to Lark (LALR), which does the parsing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import LarkError, UnexpectedInput

from scaleset.templates import limits
from scaleset.templates.errors import ExpressionError

_GRAMMAR = r"""
start: expr
?expr: atom
     | expr "." NAME             -> member
     | expr "[" expr "]"         -> index
?atom: NAME "(" [expr ("," expr)*] ")" -> call
     | STRING                     -> string
     | SIGNED_INT                 -> integer
STRING: /'(?:[^']|'')*'/
NAME: /[A-Za-z_][A-Za-z0-9_]*/
%import common.SIGNED_INT
%import common.WS
%ignore WS
"""
_PARSER = Lark(_GRAMMAR, parser="lalr", maybe_placeholders=False)


@dataclass(frozen=True)
class Literal:
    value: str | int


@dataclass(frozen=True)
class Call:
    name: str
    """Lower-cased: ARM's function names are case-insensitive."""
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Member:
    target: Node
    name: str


@dataclass(frozen=True)
class Index:
    target: Node
    index: Node


Node = Literal | Call | Member | Index


@v_args(inline=True)
class _ToTree(Transformer[Token, Node]):
    def start(self, expr: Node) -> Node:
        return expr

    def string(self, token: Token) -> Node:
        return Literal(str(token)[1:-1].replace("''", "'"))

    def integer(self, token: Token) -> Node:
        return Literal(int(token))

    def call(self, name: Token, *args: Node) -> Node:
        return Call(str(name).lower(), tuple(a for a in args if a is not None))

    def member(self, target: Node, name: Token) -> Node:
        return Member(target, str(name))

    def index(self, target: Node, index: Node) -> Node:
        return Index(target, index)


def is_expression(value: str) -> bool:
    """Whether a JSON string is an expression (not a literal, not ``[[`` escaped).

    >>> is_expression("[concat('a', 'b')]"), is_expression("[[literal]"), is_expression("x")
    (True, False, False)
    """
    return value.startswith("[") and value.endswith("]") and not value.startswith("[[")


def literal(value: str) -> str:
    """A string that is not an expression, as the template means it (``[[`` → ``[``)."""
    return value[1:] if value.startswith("[[") else value


def _depth(text: str) -> int:
    """The deepest nesting of brackets outside string literals (checked before parsing,
    so a pathological expression never reaches a recursive walk)."""
    depth = deepest = 0
    quoted = False
    for ch in text:
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch in "([":
            depth += 1
            deepest = max(deepest, depth)
        elif not quoted and ch in ")]":
            depth -= 1
    return deepest


@lru_cache(maxsize=4096)
def parse(expression: str) -> Node:
    """The syntax tree of an expression string (with or without its outer brackets).

    >>> parse("[parameters('a')[0].b]")
    Member(target=Index(target=Call(name='parameters', args=(Literal(value='a'),)), \
index=Literal(value=0)), name='b')
    """
    text = expression[1:-1] if is_expression(expression) else expression
    if len(expression) > limits.EXPRESSION_CHARS:
        raise ExpressionError(
            f"The template language expression is {len(expression)} characters long; at "
            f"most {limits.EXPRESSION_CHARS} are allowed. Split it into variables.")
    if _depth(text) > limits.EXPRESSION_DEPTH:
        raise ExpressionError(
            f"The template language expression nests deeper than {limits.EXPRESSION_DEPTH} "
            "levels. Split it into variables.")
    try:
        tree: Any = _PARSER.parse(text)
        node: Node = _ToTree().transform(tree)
    except UnexpectedInput as exc:
        raise ExpressionError(
            f"The template language expression '{text}' is not valid: unexpected input at "
            f"position {exc.column}. Please see https://aka.ms/arm-functions for usage "
            "details.") from None
    except LarkError as exc:
        raise ExpressionError(
            f"The template language expression '{text}' is not valid: {exc}.") from None
    return node


def calls(node: Node) -> list[Call]:
    """Every function call in a tree, outermost first."""
    out: list[Call] = []
    stack: list[Node] = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Call):
            out.append(n)
            stack.extend(reversed(n.args))
        elif isinstance(n, Member):
            stack.append(n.target)
        elif isinstance(n, Index):
            stack.extend([n.index, n.target])
    return out
