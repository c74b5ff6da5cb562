"""Imports inside ammpl go one way (docs/ARCHITECTURE.md, "Import direction").

Every module under ammpl/ is parsed (never imported) and each `import` / `from … import`
becomes an edge to the deepest ammpl module it names. Imports inside functions count too:
a lazy import is still a dependency, and all four import circles issue 20 found were
function-level ones. Only imports under `if TYPE_CHECKING:` are left out (they never run),
and so is the parent package Python imports on the way to a submodule (`ammpl.engine` when
`ammpl.engine.config` is named): `from ammpl.engine import X` itself is an edge to it.

Two rules: no import circle between modules, and a module imports only from its own
package or from packages in a lower layer of LAYERS. The one allowed exception is listed in
KNOWN_EXCEPTIONS with the reason it is there.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Lowest first. A package may import from packages in lower layers only; packages in the
# same layer never import each other. `ammpl/__init__.py` (the version) may be imported
# from anywhere and imports nothing.
LAYERS: list[tuple[str, ...]] = [
    ("utils",),
    ("clip", "results"),  # results: result files → numbers, uses only utils
    ("mini",),  # the mini world, its CLIP and benchmark builder
    ("data",),  # readers, the mini benchmark's included
    ("engine",),
    ("trainers",),
    ("integrations", "cli"),  # integrations: trainers inside the original Dassl
    ("sweep",),  # runs cli/train.py many times; uses its parser
    ("paper",),  # the AMMPL paper in miniature: sweeps, then tables and figures
]

# (importer, imported) pairs allowed to break a rule, each with its reason.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


# -- the graph ---------------------------------------------------------------------------
def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name → file, for every .py under root/package."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _imports(tree: ast.AST):
    """Every import statement, module level or nested, except under TYPE_CHECKING."""
    for node in ast.iter_child_nodes(tree):
        if _is_type_checking_block(node):
            yield from (child for n in node.orelse for child in _imports_in(n))
            continue
        yield from _imports_in(node)


def _imports_in(node: ast.AST):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    else:
        yield from _imports(node)


def _deepest(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_edges(root: Path, package: str = "ammpl") -> dict[tuple[str, str], int]:
    """(importer, imported) → line of the first such import, between modules of `package`."""
    modules = module_files(root, package)
    edges: dict[tuple[str, str], int] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [_deepest(alias.name, modules) for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = name if is_package else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                targets = [_deepest(f"{base}.{alias.name}", modules) for alias in node.names]
            for target in targets:
                if target and target != name:
                    edges.setdefault((name, target), node.lineno)
    return edges


def import_circles(edges: dict[tuple[str, str], int]) -> list[list[str]]:
    """Groups of modules that reach each other through imports (Tarjan's SCCs, size > 1)."""
    graph: dict[str, list[str]] = {}
    for source, target in sorted(edges):
        graph.setdefault(source, []).append(target)
        graph.setdefault(target, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return circles


def layer_of(module: str) -> int | None:
    """The layer of a module's top-level package; None for the root `ammpl`."""
    parts = module.split(".")
    if len(parts) == 1:
        return None
    for level, packages in enumerate(LAYERS):
        if parts[1] in packages:
            return level
    raise AssertionError(f"{module}: package ammpl.{parts[1]} has no place in LAYERS")


def layer_violations(edges: dict[tuple[str, str], int]) -> list[str]:
    found = []
    for (source, target), line in sorted(edges.items()):
        if source.split(".")[:2] == target.split(".")[:2] or layer_of(target) is None:
            continue
        if layer_of(source) is None or layer_of(target) >= layer_of(source):
            found.append(f"{source} (line {line}) imports {target}")
    return found


def _without_exceptions(edges: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    return {edge: line for edge, line in edges.items() if edge not in KNOWN_EXCEPTIONS}


def _describe(circle: list[str], edges: dict[tuple[str, str], int]) -> str:
    inside = [f"{s}:{edges[s, t]} → {t}" for s in circle for t in circle if (s, t) in edges]
    return "; ".join(inside)


# -- the rules on ammpl ------------------------------------------------------------------
@pytest.fixture(scope="module")
def edges(repo_root) -> dict[tuple[str, str], int]:
    return import_edges(repo_root)


def test_no_import_circles(edges):
    circles = import_circles(_without_exceptions(edges))
    assert not circles, "import circles: " + " | ".join(_describe(c, edges) for c in circles)


def test_imports_follow_the_layers(edges):
    violations = layer_violations(_without_exceptions(edges))
    assert not violations, "imports against docs/ARCHITECTURE.md's direction: " + "; ".join(
        violations
    )


def test_every_package_has_a_layer_and_the_root_imports_nothing(repo_root, edges):
    packages = {path.parent.name for path in (repo_root / "ammpl").glob("*/__init__.py")}
    placed = {name for layer in LAYERS for name in layer}
    assert packages <= placed, f"add {sorted(packages - placed)} to LAYERS (and ARCHITECTURE.md)"
    assert not [target for (source, target) in edges if source == "ammpl"]


def test_known_exceptions_still_exist(edges):
    """An exception whose import is gone must leave the list, so it cannot hide a new one."""
    stale = [pair for pair in KNOWN_EXCEPTIONS if pair not in edges]
    assert not stale, f"remove {stale} from KNOWN_EXCEPTIONS: that import is gone"


def test_the_layers_are_documented(repo_root):
    """ARCHITECTURE.md states LAYERS in one line: packages of a layer by commas, lowest first."""
    line = " ← ".join(", ".join(f"`ammpl.{name}`" for name in layer) for layer in LAYERS)
    text = " ".join((repo_root / "docs" / "ARCHITECTURE.md").read_text().split())
    assert line in text, f"docs/ARCHITECTURE.md should state the layers as: {line}"


# -- the checker itself ------------------------------------------------------------------
def _write(root: Path, files: dict[str, str]) -> None:
    for name, code in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(code))


def test_the_checker_sees_function_level_and_relative_imports_but_not_type_checking(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg import b\n",
            "pkg/b.py": "def f():\n    from . import a\n",  # the circle: a → b → a
            "pkg/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n",
            "pkg/d.py": "import pkg.a.missing_name\nfrom pkg.c import x\n",
        },
    )
    edges = import_edges(tmp_path, "pkg")
    assert set(edges) == {
        ("pkg.a", "pkg.b"),
        ("pkg.b", "pkg.a"),
        ("pkg.d", "pkg.a"),
        ("pkg.d", "pkg.c"),
    }
    assert import_circles(edges) == [["pkg.a", "pkg.b"]]


def test_the_checker_flags_an_upward_import():
    edges = {
        ("ammpl.clip.backbones", "ammpl.mini.model"): 3,
        ("ammpl.mini.model", "ammpl.clip.tokenizer"): 1,
    }
    assert layer_violations(edges) == ["ammpl.clip.backbones (line 3) imports ammpl.mini.model"]
    assert layer_violations({("ammpl.cli.demo", "ammpl.integrations.dassl"): 1})  # same layer


# -- what the direction costs nothing of --------------------------------------------------
def test_a_fresh_interpreter_loads_mini_and_imports_no_optional_executor(repo_root):
    """clip never imports mini, yet `load_backbone("mini")` works; slurm/ray stay unloaded."""
    code = textwrap.dedent(
        """
        import sys
        import ammpl.clip.backbones
        import ammpl.sweep.choose_executor, ammpl.sweep.cli, ammpl.sweep.runner
        assert not [m for m in sys.modules if m.startswith("ammpl.mini")], "clip imported mini"
        loaded = {"ammpl.sweep.slurm", "ammpl.sweep.ray_executor"} & set(sys.modules)
        assert not loaded, loaded
        from ammpl.clip import available_backbones, load_backbone
        assert "mini" in available_backbones()
        print(load_backbone("mini").ammpl_source)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(repo_root), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("bundled:")
