"""The compiler's layers import downward only (docs/ARCHITECTURE.md).

Each module of `compiler/` belongs to one layer; it may import modules of its own
layer or of a lower one, at module level, and the imports between modules form no
cycle. `runtime/` never imports `compiler/`.
"""
import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent

# lowest first; a module is named by its dotted path inside `compiler`
LAYERS = [
    ("base", ["errors", "config"]),
    ("ir", ["ir"]),
    ("primitives", ["primitives", "aliasing", "validation"]),
    ("tracing", ["concretization", "guards", "evaluation", "tracing", "numpy_dispatch", "fused_dispatch", "numpy_functions", "scipy_dispatch"]),
    ("transforms", ["transforms"]),
    ("passes", ["passes"]),
    ("codegen", ["naming", "printer", "rolling", "codegen"]),
    ("api", ["signature", "lowering", "captures", "api", "derivatives", "custom", "structured", "ode", "prediction", "step_call", "step", "standalone", "pictures", "cli", "__main__", "__init__"]),
]


def _layer_of(module: str) -> int:
    for rank, (_, members) in enumerate(LAYERS):
        if any(module == m or module.startswith(m + ".") for m in members):
            return rank
    raise AssertionError(f"compiler.{module} is in no layer: add it to LAYERS and to docs/ARCHITECTURE.md")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / "compiler").rglob("*.py")):
        parts = list(path.relative_to(ROOT / "compiler").with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported compiler module, imported at module level) for each import."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "compiler":
            base = node.module[len("compiler"):].lstrip(".")
            names = [f"{base}.{a.name}".lstrip(".") if not base else base for a in node.names]
            if not base:
                names = [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name[len("compiler."):] for a in node.names if a.name.startswith("compiler.")]
        for name in names:
            found.append((name, id(node) in top))
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str:
    """`primitives.registry.literal` -> `primitives.registry` (the module imported)."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        candidate = ".".join(parts[:k])
        if candidate in modules:
            return candidate
    raise AssertionError(f"compiler.{name} is not a module of the compiler")


MODULES = _modules()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_only_its_own_layer_or_lower(module):
    rank = _layer_of(module)
    for name, at_top in _imports(MODULES[module]):
        target = _resolve(name, MODULES)
        assert at_top, f"compiler.{module} imports compiler.{target} inside a function"
        assert _layer_of(target) <= rank, (
            f"compiler.{module} ({LAYERS[rank][0]}) imports compiler.{target} ({LAYERS[_layer_of(target)][0]}), a higher layer"
        )


def test_no_import_cycles():
    graph = nx.DiGraph()
    for module, path in MODULES.items():
        graph.add_node(module)
        for name, _ in _imports(path):
            target = _resolve(name, MODULES)
            if target != module and not module.startswith(target + "."):  # a package's own __init__
                graph.add_edge(module, target)
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, cycles


def test_runtime_never_imports_the_compiler():
    for path in (ROOT / "runtime").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "compiler" for a in node.names), path
            if isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] != "compiler", path
