"""A fast printer for the statements codegen builds, byte-identical to `ast.unparse`.

`ast.unparse` walks a generic visitor and opens a context manager per operator; on a
30,000-primitive program printing took a third of code generation. The forms
generated code is made of (names, numbers, attributes, calls, operators,
comparisons, subscripts, tuples, assignments) are printed here with the same
precedence rules (CPython's `ast._Unparser`: a left-associative operator
parenthesizes an equal-precedence right operand, `**` the left one, a unary minus
binds tighter than `*` and looser than `**`); anything else, and any statement
holding it, goes to `ast.unparse`. tests/test_printer.py holds the two to the same
text.
"""
from __future__ import annotations

import ast
import sys

# CPython's precedence levels (ast._Precedence), lowest first
TUPLE, YIELD, TEST, OR, AND, NOT, CMP, BOR, BXOR, BAND, SHIFT, ARITH, TERM, FACTOR, POWER, AWAIT, ATOM = range(2, 19)
_INFSTR = "1e" + repr(sys.float_info.max_10_exp + 1)

_BINARY = {
    ast.Add: ("+", ARITH), ast.Sub: ("-", ARITH), ast.Mult: ("*", TERM), ast.MatMult: ("@", TERM),
    ast.Div: ("/", TERM), ast.Mod: ("%", TERM), ast.FloorDiv: ("//", TERM), ast.Pow: ("**", POWER),
    ast.LShift: ("<<", SHIFT), ast.RShift: (">>", SHIFT), ast.BitOr: ("|", BOR), ast.BitXor: ("^", BXOR),
    ast.BitAnd: ("&", BAND),
}
_UNARY = {ast.USub: ("-", FACTOR), ast.UAdd: ("+", FACTOR), ast.Invert: ("~", FACTOR), ast.Not: ("not ", NOT)}
_COMPARE = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
            ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}


class _Unprintable(Exception):
    """A form this printer leaves to ast.unparse."""


def unparse(stmt: ast.stmt) -> str:
    """`ast.unparse(stmt)`, faster for the forms generated code uses."""
    try:
        return _statement(stmt)
    except _Unprintable:
        if hasattr(stmt, "body"):
            ast.fix_missing_locations(stmt)
        elif not hasattr(stmt, "lineno"):
            stmt.lineno = 1
        return ast.unparse(stmt)


def _statement(stmt: ast.stmt) -> str:
    kind = type(stmt)
    if kind is ast.Assign and stmt.type_comment is None:
        return "".join(_expr(target, TUPLE) + " = " for target in stmt.targets) + _expr(stmt.value, TEST)
    if kind is ast.AugAssign:
        return f"{_expr(stmt.target, TEST)} {_BINARY[type(stmt.op)][0]}= {_expr(stmt.value, TEST)}"
    if kind is ast.Expr:
        return _expr(stmt.value, YIELD)
    raise _Unprintable


def _expr(node: ast.expr, context: int) -> str:
    """`node` printed where the surrounding syntax has precedence `context`."""
    kind = type(node)
    if kind is ast.Name:
        return node.id
    if kind is ast.Constant:
        return _constant(node)
    if kind is ast.Attribute:
        value = _expr(node.value, ATOM)
        space = " " if type(node.value) is ast.Constant and isinstance(node.value.value, int) else ""
        return f"{value}{space}.{node.attr}"
    if kind is ast.Call:
        if any(type(a) is ast.Starred for a in node.args):
            raise _Unprintable
        args = [_expr(a, TEST) for a in node.args]
        args += [f"{'**' if k.arg is None else k.arg + '='}{_expr(k.value, TEST)}" for k in node.keywords]
        return f"{_expr(node.func, ATOM)}({', '.join(args)})"
    if kind is ast.BinOp:
        op, own = _BINARY[type(node.op)]
        left, right = (own + 1, own) if own == POWER else (own, own + 1)
        return _parenthesized(f"{_expr(node.left, left)} {op} {_expr(node.right, right)}", context > own)
    if kind is ast.UnaryOp:
        op, own = _UNARY[type(node.op)]
        return _parenthesized(op + _expr(node.operand, own), context > own)
    if kind is ast.Compare:
        parts = [_expr(node.left, CMP + 1)]
        for op, right in zip(node.ops, node.comparators):
            parts.append(f" {_COMPARE[type(op)]} {_expr(right, CMP + 1)}")
        return _parenthesized("".join(parts), context > CMP)
    if kind is ast.Subscript:
        index = node.slice
        inner = _items(index.elts) if type(index) is ast.Tuple and index.elts else _expr(index, TEST)
        return f"{_expr(node.value, ATOM)}[{inner}]"
    if kind is ast.Slice:
        text = (_expr(node.lower, TEST) if node.lower else "") + ":" + (_expr(node.upper, TEST) if node.upper else "")
        return text + (":" + _expr(node.step, TEST) if node.step else "")
    if kind is ast.Tuple:
        return _parenthesized(_items(node.elts), not node.elts or context > TUPLE)
    if kind is ast.List:
        return "[" + ", ".join(_expr(e, TEST) for e in node.elts) + "]"
    raise _Unprintable


def _items(elts: list[ast.expr]) -> str:
    """Tuple items as ast.unparse writes them: a one-element tuple keeps its comma."""
    if len(elts) == 1:
        return _expr(elts[0], TEST) + ","
    return ", ".join(_expr(e, TEST) for e in elts)


def _constant(node: ast.Constant) -> str:
    value = node.value
    if node.kind is not None or isinstance(value, (tuple, str, bytes)) or value is ...:
        raise _Unprintable  # u-strings, string escapes, constant tuples: ast.unparse's own rules
    if isinstance(value, (float, complex)):
        return repr(value).replace("inf", _INFSTR).replace("nan", f"({_INFSTR}-{_INFSTR})")
    return repr(value)


def _parenthesized(text: str, needed: bool) -> str:
    return f"({text})" if needed else text
