"""The layout of the `gateway` package, read from its source with ast (nothing is imported).

- no import cycles among gateway modules: imports at module level and inside functions both
  count; `from __future__` and imports under `if TYPE_CHECKING:` do not;
- the HTTP layer (gateway/api/) never imports gateway.ovn, ovsdbapp or ovs itself (type-only
  imports included): it goes through gateway.services;
- no module uses another module's private names: neither `from x import _y` nor `module._y`
  on a gateway module it imported.
"""

from __future__ import annotations

import ast
import itertools
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "gateway"
API = "gateway.api"
OVN_LAYER = ("gateway.ovn", "ovsdbapp", "ovs")  # what only services and ovn/ may import


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module: a gateway module if it is one, else the dotted name
    names: tuple[str, ...]  # what `from target import ...` takes ("" for `import target`)
    line: int
    in_function: bool
    type_only: bool  # under `if TYPE_CHECKING:`

    def where(self) -> str:
        scope = "in a function" if self.in_function else "module level"
        return f"{self.source}:{self.line} ({scope}{', type-only' if self.type_only else ''})"


@dataclass(frozen=True)
class PrivateUse:
    source: str
    line: int
    what: str  # "from X import _y" or "X._y"


# --- reading modules ---------------------------------------------------------------------------


def read_package(root: Path) -> dict[str, str]:
    """{dotted module name: source} for every .py file under ROOT (ROOT's name is the package)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = (root.name, *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path.read_text()
    return modules


def _is_package(name: str, modules: Mapping[str, str]) -> bool:
    return any(other.startswith(name + ".") for other in modules)


def _resolve(name: str, modules: Mapping[str, str]) -> str:
    """The gateway module NAME lives in (its longest known prefix), or NAME if none."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return name


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


class _Reader(ast.NodeVisitor):
    """The imports of one module, and its uses of other gateway modules' private names."""

    def __init__(self, name: str, modules: Mapping[str, str]) -> None:
        self.name, self.modules = name, modules
        self.package = name if _is_package(name, modules) else name.rpartition(".")[0]
        self.imports: list[Import] = []
        self.private: list[PrivateUse] = []
        self.depth = 0  # functions we are in
        self.type_only = 0  # TYPE_CHECKING blocks we are in
        self.scopes: list[dict[str, str]] = [{}]  # local name -> gateway module it is bound to

    def _add(self, target: str, names: tuple[str, ...], node: ast.stmt) -> None:
        self.imports.append(Import(self.name, target, names, node.lineno, self.depth > 0,
                                   self.type_only > 0))

    def _bind(self, local: str, module: str) -> None:
        if module in self.modules:
            self.scopes[-1][local] = module

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(_resolve(alias.name, self.modules), ("",), node)
            if alias.asname:
                self._bind(alias.asname, alias.name)
            else:  # `import a.b.c` binds `a`
                top = alias.name.split(".")[0]
                self._bind(top, top)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module == "__future__":
            return
        base = node.module or ""
        if node.level:
            package = self.package.split(".")
            anchor = ".".join(package[: len(package) - node.level + 1])
            base = f"{anchor}.{base}" if base else anchor
        by_target: dict[str, list[str]] = {}
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            if submodule in self.modules:  # `from package import module`
                by_target.setdefault(submodule, []).append("")
                self._bind(alias.asname or alias.name, submodule)
            else:
                by_target.setdefault(_resolve(base, self.modules), []).append(alias.name)
            if _private(alias.name):
                self.private.append(PrivateUse(self.name, node.lineno,
                                               f"from {base} import {alias.name}"))
        for target, names in by_target.items():
            self._add(target, tuple(names), node)

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self.visit(node.test)
        self.type_only += 1
        for stmt in node.body:
            self.visit(stmt)
        self.type_only -= 1
        for stmt in node.orelse:
            self.visit(stmt)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self.depth += 1
        self.scopes.append({})
        self.generic_visit(node)
        self.scopes.pop()
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if _private(node.attr):
            dotted = _dotted(node.value)
            if dotted is not None:
                head, _, rest = dotted.partition(".")
                bound = next((s[head] for s in reversed(self.scopes) if head in s), None)
                if bound is not None:
                    module = f"{bound}.{rest}" if rest else bound
                    if module in self.modules and module != self.name:
                        self.private.append(PrivateUse(self.name, node.lineno,
                                                       f"{module}.{node.attr}"))
        self.generic_visit(node)


def read(modules: Mapping[str, str]) -> tuple[list[Import], list[PrivateUse]]:
    imports: list[Import] = []
    private: list[PrivateUse] = []
    for name, source in modules.items():
        reader = _Reader(name, modules)
        reader.visit(ast.parse(source, filename=name))
        imports += reader.imports
        private += reader.private
    return imports, private


# --- the rules ---------------------------------------------------------------------------------


def _components(graph: Mapping[str, set[str]]) -> Iterator[list[str]]:
    """Strongly connected components (Tarjan), each sorted; only those that hold a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> Iterator[list[str]]:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                yield from visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                yield sorted(component)

    for node in sorted(graph):
        if node not in index:
            yield from visit(node)


def _shortest_cycle(start: str, graph: Mapping[str, set[str]]) -> list[str]:
    """START, ..., START: a shortest way back to START."""
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if nxt not in previous:
                previous[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"{start} is on no cycle")


def import_cycles(modules: Mapping[str, str], imports: list[Import]) -> list[str]:
    graph: dict[str, set[str]] = {name: set() for name in modules}
    lines: dict[tuple[str, str], list[Import]] = {}
    for imp in imports:
        if imp.type_only or imp.target not in modules or imp.target == imp.source:
            continue
        graph[imp.source].add(imp.target)
        lines.setdefault((imp.source, imp.target), []).append(imp)
    problems = []
    for component in _components(graph):
        cycle = _shortest_cycle(component[0], graph)
        steps = []
        for a, b in itertools.pairwise(cycle):
            where = ", ".join(i.where() for i in lines[(a, b)])
            steps.append(f"    {a} imports {b}  [{where}]")
        problems.append(f"import cycle among {', '.join(component)}:\n" + "\n".join(steps))
    return problems


def api_reaching_ovn(imports: list[Import]) -> list[str]:
    problems = []
    for imp in imports:
        if imp.source != API and not imp.source.startswith(API + "."):
            continue
        if any(imp.target == t or imp.target.startswith(t + ".") for t in OVN_LAYER):
            problems.append(f"{imp.where()} imports {imp.target}: gateway/api/ is HTTP only; "
                            "go through gateway.services")
    return problems


def private_uses(private: list[PrivateUse]) -> list[str]:
    return [f"{p.source}:{p.line} uses a private name of another module: {p.what}"
            for p in private]


# --- the gateway package -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway() -> tuple[dict[str, str], list[Import], list[PrivateUse]]:
    modules = read_package(PACKAGE)
    assert "gateway.app" in modules and "gateway.api" in modules, sorted(modules)
    imports, private = read(modules)
    return modules, imports, private


def _fail(title: str, problems: list[str]) -> None:
    if problems:
        pytest.fail(f"{title} ({len(problems)}):\n" + "\n".join(problems), pytrace=False)


def test_no_import_cycles(gateway: tuple[dict[str, str], list[Import], list[PrivateUse]]
                          ) -> None:
    modules, imports, _ = gateway
    assert any(i.target.startswith("gateway.") for i in imports)  # the reader sees imports
    _fail("gateway modules that import each other", import_cycles(modules, imports))


def test_api_does_not_reach_ovn(gateway: tuple[dict[str, str], list[Import], list[PrivateUse]]
                                ) -> None:
    _fail("gateway/api/ modules that import the OVN layer", api_reaching_ovn(gateway[1]))


def test_no_private_names_across_modules(
        gateway: tuple[dict[str, str], list[Import], list[PrivateUse]]) -> None:
    _fail("uses of other modules' private names", private_uses(gateway[2]))


# --- the checks themselves, on made-up modules -------------------------------------------------


def _made_up(**sources: str) -> dict[str, str]:
    return {name.replace("__", "."): text for name, text in sources.items()}


def test_cycles_count_function_imports_but_not_type_checking_or_future() -> None:
    modules = _made_up(
        pkg="",
        pkg__a="from __future__ import annotations\nfrom pkg import b\n",
        pkg__b="def f():\n    from pkg.c import x\n",
        pkg__c="from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n"
               "else:\n    import os\n",
        pkg__d="from . import e\n",
        pkg__e="import pkg.d as d\n",
    )
    imports, _ = read(modules)
    problems = import_cycles(modules, imports)
    assert len(problems) == 1, problems
    assert "pkg.d, pkg.e" in problems[0] and "pkg.e:1 (module level)" in problems[0]
    modules["pkg.c"] = "def g():\n    import pkg.a\n"
    imports, _ = read(modules)
    problems = import_cycles(modules, imports)
    assert any("among pkg.a, pkg.b, pkg.c" in p and "pkg.b:2 (in a function)" in p
               for p in problems), problems


def test_api_rule_and_private_names() -> None:
    modules = _made_up(
        gateway="", gateway__api="", gateway__ovn="", gateway__ovn__index="_x = 1\n",
        gateway__api__ok="from gateway.services import x\n",
        gateway__api__bad="import ovsdbapp.backend\nfrom gateway.ovn import index\n"
                          "from gateway.ovn.index import _x\n"
                          "def f():\n    return index._x + index.__name__.__len__()\n",
        gateway__services="from gateway import ovn\nfrom gateway.ovn import index as ix\n"
                          "y = ix._x\nz = ovn._hidden\n",
    )
    imports, private = read(modules)
    assert sorted(p.split(" imports ")[1].split(":")[0] for p in api_reaching_ovn(imports)) == [
        "gateway.ovn.index", "gateway.ovn.index", "ovsdbapp.backend"]
    assert sorted((p.source, p.what) for p in private) == [
        ("gateway.api.bad", "from gateway.ovn.index import _x"),
        ("gateway.api.bad", "gateway.ovn.index._x"),
        ("gateway.services", "gateway.ovn._hidden"),
        ("gateway.services", "gateway.ovn.index._x"),
    ]
