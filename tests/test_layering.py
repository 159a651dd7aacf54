"""The layering holds: only the web layer, the CLI and the app factory import Flask, and the
package's modules import one another without cycles (docs: STYLE.md, "The house")."""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import moderation

PACKAGE = Path(moderation.__file__).resolve().parent
# Where Flask (and its Werkzeug) may be imported: the edges of the service.
FLASK_ALLOWED = ("moderation.web", "moderation.cli", "moderation.app")
WEB_FRAMEWORK = ("flask", "werkzeug")  # Jinja renders mail too, outside any request


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    _module_name(path): path
    for path in sorted(PACKAGE.rglob("*.py"))
    if "migrations" not in path.relative_to(PACKAGE).parts
}


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


@functools.cache
def _imports(module: str, *, deferred: bool) -> frozenset[str]:
    """The modules ``module`` imports: at module level, and with ``deferred`` also inside
    functions; never those under ``if TYPE_CHECKING``."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST, *, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                continue
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import) and (deferred or not in_function):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and (deferred or not in_function):
                assert child.level == 0, f"{module}: use absolute imports"
                base = child.module or ""
                for alias in child.names:
                    submodule = f"{base}.{alias.name}"
                    found.add(submodule if submodule in MODULES else base)
            visit(child, in_function=nested)

    visit(tree, in_function=False)
    return frozenset(found)


def _allowed_flask(module: str) -> bool:
    return any(module == edge or module.startswith(edge + ".") for edge in FLASK_ALLOWED)


def test_the_module_list_is_the_package() -> None:
    """The checks below see every module (a broken walk would make them pass vacuously)."""
    assert {"moderation.spam", "moderation.web.api", "moderation.outbox.worker"} <= set(MODULES)
    assert any(name.split(".")[0] == "flask" for name in _imports("moderation.app", deferred=True))


def test_only_the_edges_import_flask() -> None:
    offenders = {
        module: sorted(
            name for name in _imports(module, deferred=True) if name.split(".")[0] in WEB_FRAMEWORK
        )
        for module in MODULES
        if not _allowed_flask(module)
    }
    assert {module: names for module, names in offenders.items() if names} == {}


def test_domain_modules_reach_no_flask_through_their_imports() -> None:
    """What a domain module loads at import time, followed module by module, stays off the web."""
    for start in (m for m in MODULES if not _allowed_flask(m)):
        seen, todo = {start}, [start]
        while todo:
            for name in _imports(todo.pop(), deferred=False):
                if name in MODULES and name not in seen:
                    assert not _allowed_flask(name), f"{start} imports {name} (Flask) at load"
                    seen.add(name)
                    todo.append(name)


def test_no_import_cycles() -> None:
    """No module imports, even inside a function, one that imports it back through any chain."""
    graph = {m: {n for n in _imports(m, deferred=True) if n in MODULES and n != m} for m in MODULES}
    # A package's __init__ that gathers its submodules (moderation.web registers its blueprints)
    # is no cycle with the submodules it gathers.
    for module, names in graph.items():
        graph[module] = {n for n in names if not module.startswith(n + ".")}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def walk(module: str, path: list[str]) -> None:
        state[module] = 1
        for name in sorted(graph[module]):
            if state.get(name) == 1:
                cycles.append([*path[path.index(name) :], name])
            elif name not in state:
                walk(name, [*path, name])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert cycles == []


def test_importing_a_domain_module_loads_no_flask() -> None:
    """The acceptance check anyone can run, in a fresh interpreter."""
    check = (
        "import moderation.spam, moderation.outbox.worker, sys; assert 'flask' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", check], check=True)


def test_the_old_serving_address_still_works() -> None:
    """Deployments that serve ``moderation:create_app()`` keep working."""
    from moderation.app import create_app

    assert moderation.create_app is create_app
