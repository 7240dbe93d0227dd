"""compiler/printer.py prints statements exactly as `ast.unparse` does: on random
expression trees of every form it handles (precedence, associativity, unary minus
against `**`, negative and non-finite numbers, one-element tuples), and on every
statement of generated programs."""
import ast
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import compiler.rolling as rolling
from compiler import grad, jvp, printer
from fuzzing import check_program, random_program

names = st.sampled_from(["x", "g_x", "np", "t1"]).map(lambda n: ast.Name(n, ast.Load()))
numbers = st.one_of(st.integers(-3, 300), st.floats(allow_nan=True), st.sampled_from([0.5, -0.5, 1e-12, math.inf]),
                    st.booleans(), st.none()).map(ast.Constant)
binary_ops = st.sampled_from([ast.Add, ast.Sub, ast.Mult, ast.MatMult, ast.Div, ast.Mod, ast.FloorDiv, ast.Pow,
                              ast.BitAnd, ast.BitOr, ast.BitXor, ast.LShift, ast.RShift])
compare_ops = st.sampled_from([ast.Lt, ast.Gt, ast.Eq, ast.NotEq, ast.LtE, ast.GtE, ast.Is, ast.In])


def _extend(children):
    return st.one_of(
        st.builds(lambda a, op, b: ast.BinOp(a, op(), b), children, binary_ops, children),
        st.builds(lambda op, a: ast.UnaryOp(op(), a), st.sampled_from([ast.USub, ast.UAdd, ast.Invert, ast.Not]),
                  children),
        st.builds(lambda a, ops, bs: ast.Compare(a, [op() for op in ops], bs[: len(ops)]), children,
                  st.lists(compare_ops, min_size=1, max_size=2), st.lists(children, min_size=2, max_size=2)),
        st.builds(lambda f, args, kw: ast.Call(ast.Attribute(f, "sum", ast.Load()), args,
                                               [ast.keyword("axis", v) for v in kw]),
                  children, st.lists(children, max_size=2), st.lists(children, max_size=1)),
        st.builds(lambda v, items: ast.Subscript(v, ast.Tuple(items, ast.Load()) if len(items) != 1 else items[0],
                                                  ast.Load()),
                  children, st.lists(st.one_of(children, st.builds(ast.Slice, st.none() | children,
                                                                   st.none() | children)), min_size=1, max_size=3)),
        st.builds(lambda items: ast.Tuple(items, ast.Load()), st.lists(children, max_size=3)),
        st.builds(lambda items: ast.List(items, ast.Load()), st.lists(children, max_size=2)),
        st.builds(lambda v: ast.Attribute(v, "T", ast.Load()), children),
    )


expressions = st.recursive(st.one_of(names, numbers), _extend, max_leaves=12)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(expressions, st.sampled_from(["assign", "augmented", "expression", "tuple target"]))
def test_random_statements_print_as_ast_unparse_prints_them(value, form):
    if form == "assign":
        stmt = ast.Assign([ast.Name("y", ast.Store())], value, lineno=1)
    elif form == "augmented":
        stmt = ast.AugAssign(ast.Name("y", ast.Store()), ast.Mult(), value)
    elif form == "tuple target":
        stmt = ast.Assign([ast.Tuple([ast.Name("a", ast.Store()), ast.Name("b", ast.Store())], ast.Store())], value,
                          lineno=1)
    else:
        stmt = ast.Expr(value)
    assert printer.unparse(stmt) == ast.unparse(stmt)


def test_generated_programs_print_as_ast_unparse_prints_them(monkeypatch):
    printed = []

    def checked(stmt):
        text = printer.unparse(stmt)
        if not hasattr(stmt, "lineno"):
            stmt.lineno = 1
        assert text == ast.unparse(stmt)
        printed.append(text)
        return text

    monkeypatch.setattr(rolling, "_unparse", checked)
    for seed in range(40):
        assert not check_program(random_program(20_000 + seed)).failures
    x = np.linspace(-1.0, 1.0, 6).reshape(2, 3)
    grad(lambda x: np.sum(np.where(x > 0, np.sqrt(np.abs(x)), -x ** 2) @ x.T))(x)
    jvp(lambda x: np.exp(-x[:, None] * 2.0) ** -1.5, (x,), (x,))
    assert len(printed) > 500
