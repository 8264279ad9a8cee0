"""Architecture figures of src/tollway: modules per package, largest files, long functions, import cycles.

`python tools/arch_stats.py` prints them; `--check` exits 1 naming what misses a target of
docs/architecture.md (tests/unit/test_architecture.py asserts the same). Every import counts, late
ones inside functions and `TYPE_CHECKING` ones too: a cycle of ideas is still a cycle. Cycles are
counted as strongly connected components of the module graph (a component of n modules is one cycle).
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
FUNCTION_LIMIT = 60
FILE_LIMIT = 400
FILE_EXCEPTIONS = {"tollway.core.money.ledger": 420}  # the money path stays in one place
PACKAGE_LIMIT = 12
# Alembic's revisions are an append-only history, one file per schema change, not modules to design.
PACKAGE_LIMIT_EXEMPT = ("tollway.store.migrations.versions",)
# Where a long function is expected: schema migrations and the app factory (docs/architecture.md).
LONG_FUNCTION_EXEMPT = ("tollway.store.migrations.", "tollway.runtime.app", "tollway.runtime.app")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The tollway modules `name` imports, resolved to modules (a `from pkg import mod` is `pkg.mod`)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and (target in known):
                found.add(target)
    return found


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(10_000)

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def long_functions(name: str, path: Path) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > FUNCTION_LIMIT:
                found.append((f"{name}.{node.name}", length))
    return found


def problems() -> list[str]:
    """Every miss of a target: cycles, files over 400 lines, packages over 12 modules, long functions."""
    mods = modules()
    known = set(mods)
    found = [
        "import cycle: " + " <-> ".join(c)
        for c in strongly_connected({n: imports_of(n, p, known) for n, p in mods.items()})
    ]
    per_package: dict[str, int] = defaultdict(int)
    for name, path in mods.items():
        size = len(path.read_text().splitlines())
        if size > FILE_EXCEPTIONS.get(name, FILE_LIMIT):
            found.append(f"{name}: {size} lines")
        if path.name != "__init__.py":
            per_package[name.rpartition(".")[0]] += 1
        if not name.startswith(LONG_FUNCTION_EXEMPT):
            found += [f"{fn}: {length} lines" for fn, length in long_functions(name, path)]
    found += [
        f"{pkg}: {n} modules"
        for pkg, n in per_package.items()
        if n > PACKAGE_LIMIT and pkg not in PACKAGE_LIMIT_EXEMPT
    ]
    return found


def main() -> None:
    if "--check" in sys.argv[1:]:
        missed = problems()
        print("\n".join(missed) or "every architecture target is met")
        sys.exit(1 if missed else 0)
    mods = modules()
    known = set(mods)
    graph = {name: imports_of(name, path, known) for name, path in mods.items()}
    per_package: dict[str, int] = defaultdict(int)
    for name, path in mods.items():
        if path.name != "__init__.py":
            per_package[name.rpartition(".")[0]] += 1
    sizes = sorted(((len(p.read_text().splitlines()), n) for n, p in mods.items()), reverse=True)
    print("modules per package (without __init__):")
    for package, count in sorted(per_package.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {count:3d}  {package}")
    print(f"source files: {len(mods)}, lines: {sum(s for s, _ in sizes)}")
    print("largest files:")
    for size, name in sizes[:8]:
        print(f"  {size:4d}  {name}")
    longs = [
        item
        for name, path in mods.items()
        if not name.startswith(LONG_FUNCTION_EXEMPT)
        for item in long_functions(name, path)
    ]
    print(f"functions over {FUNCTION_LIMIT} lines (migrations and the app factory aside): {len(longs)}")
    for fn, length in sorted(longs, key=lambda item: -item[1]):
        print(f"  {length:4d}  {fn}")
    cycles = strongly_connected(graph)
    print(f"import cycles (strongly connected components, every import counted): {len(cycles)}")
    for component in cycles:
        print("  " + " <-> ".join(component))


if __name__ == "__main__":
    main()
