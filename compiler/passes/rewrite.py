"""The one way passes replace a node, keeping the metadata readers rely on, and
the rule that keeps graph outputs fresh arrays while they do."""
from compiler.aliasing import aliases_argument
from compiler.ir import Graph


def replace(graph: Graph, old: int, new: int) -> None:
    """Redirect every use of `old` to `new`, remove `old`, and let `new` inherit
    the user's variable name or cotangent role when it has none of its own."""
    before, after = graph.node(old), graph.node(new)
    if after.is_call and after.name is None and after.cotangent_of is None and after.tangent_of is None:
        if before.name is not None and after.grad_of is None:
            after.name = before.name
        elif before.cotangent_of is not None and after.grad_of is not None:
            after.cotangent_of = before.cotangent_of
        elif before.tangent_of is not None:
            after.tangent_of = before.tangent_of
    graph.replace_uses(old, new)
    graph.remove(old)


def can_replace(graph: Graph, old: int, new: int) -> bool:
    """Whether `new` may stand in for `old` without an output losing freshness:
    an output never becomes an alias of an argument, nor the same array as another
    output (a caller may write into each gradient it gets)."""
    if old not in graph.outputs:
        return True
    if new in graph.outputs:
        return False
    return aliases_argument(graph, old) or not aliases_argument(graph, new)
