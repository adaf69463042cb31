"""The package's layout as code: imports run one way, from the chapters' door (tdsae.pipeline) down the
pipeline to its foundations, with no cycle, no tdsae import hidden in a function body and no private
name borrowed from another module. docs/architecture.md explains the layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tdsae"

# Each top-level part of tdsae and its layer: a part may import only parts of lower layers.
LAYERS = {
    "validation": 0,
    "runtime": 1, "presets": 1, "stats": 1,
    "artifacts": 2, "claims": 2, "tasks": 2, "plots": 2,
    "agents": 3, "models": 3,
    "behaviour": 4, "play": 4, "sae": 4,
    "activations": 5, "organism": 5,
    "latents": 6,
    "interventions": 7, "circuits": 7,
    "pipeline": 8,
    "book": 9, "chapter": 9, "cli": 10, "tdsae": 11,  # "tdsae": the package's own __init__
}


def module_names(root: Path) -> dict[str, Path]:
    """{dotted module name: file} for every module of the package at root."""
    names = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports_of(root: Path) -> list[tuple[str, str, str, bool]]:
    """Every import of a module of the package by one of its modules, top level or not.

    Returns: (importer, imported module, imported name or "", inside a function body).
    """
    modules = module_names(root)
    found = []
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text())
        in_function = {id(node) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                       for node in ast.walk(fn) if node is not fn}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                if base.split(".")[0] != root.name:
                    continue
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    target, name = (submodule, "") if submodule in modules else (base, alias.name)
                    found.append((module, target, name, id(node) in in_function))
            elif isinstance(node, ast.Import):
                found.extend((module, alias.name, "", id(node) in in_function) for alias in node.names
                             if alias.name.split(".")[0] == root.name)
    return found


def find_cycle(root: Path) -> list[str]:
    """One import cycle among the package's modules (as a closed path), or [] if there is none."""
    edges: dict[str, set[str]] = {}
    for importer, imported, _, _ in imports_of(root):
        if importer != imported:
            edges.setdefault(importer, set()).add(imported)
    state: dict[str, str] = {}  # "open" while on the DFS stack, "done" after

    def visit(node: str, path: list[str]) -> list[str]:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state:
                cycle = visit(nxt, path + [nxt])
                if cycle:
                    return cycle
        state[node] = "done"
        return []

    for start in sorted(edges):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return []


def part_of(module: str) -> str:
    """The top-level part a module belongs to: "tdsae.latents.search" -> "latents"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def plant(root: Path, files: dict[str, str]) -> Path:
    """A throwaway package named tdsae under root holding the given files."""
    package = root / "tdsae"
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    return package


def test_the_package_has_no_import_cycle():
    assert find_cycle(PACKAGE) == []


def test_a_planted_cycle_is_found_even_through_a_function_body(tmp_path):
    package = plant(tmp_path, {"__init__.py": "", "a.py": "from tdsae.b import g\n",
                               "b.py": "def g():\n    from tdsae.a import f\n    return f\n"})
    assert find_cycle(package) in (["tdsae.a", "tdsae.b", "tdsae.a"], ["tdsae.b", "tdsae.a", "tdsae.b"])


def test_a_planted_cycle_through_a_relative_import_and_a_package_init_is_found(tmp_path):
    package = plant(tmp_path, {"__init__.py": "", "x/__init__.py": "from .y import h\n",
                               "x/y.py": "from tdsae.z import k\n", "z.py": "import tdsae.x\n"})
    cycle = find_cycle(package)
    assert cycle and cycle[0] == cycle[-1] and set(cycle) == {"tdsae.x", "tdsae.x.y", "tdsae.z"}


def test_no_module_imports_tdsae_inside_a_function():
    hidden = sorted({f"{importer} -> {imported}" for importer, imported, _, inside in imports_of(PACKAGE) if inside})
    assert hidden == [], "imports of tdsae inside function bodies hide the import graph: " + ", ".join(hidden)


def test_no_private_name_is_imported_from_another_module():
    borrowed = sorted(f"{importer} imports {imported}.{name}" for importer, imported, name, _ in imports_of(PACKAGE)
                      if name.startswith("_"))
    assert borrowed == []


def test_every_part_has_a_layer():
    parts = {part_of(module) for module in module_names(PACKAGE)}
    assert parts == set(LAYERS), f"parts without a layer: {parts - set(LAYERS)}; layers of no part: {set(LAYERS) - parts}"


def test_parts_import_only_from_lower_layers():
    upward = sorted({f"{part_of(a)} (layer {LAYERS[part_of(a)]}) -> {part_of(b)} (layer {LAYERS[part_of(b)]})"
                     for a, b, _, _ in imports_of(PACKAGE)
                     if part_of(a) != part_of(b) and LAYERS[part_of(b)] >= LAYERS[part_of(a)]})
    assert upward == [], "imports that do not run down the pipeline: " + "; ".join(upward)


def test_a_planted_upward_import_is_refused(tmp_path):
    package = plant(tmp_path, {"__init__.py": "", "models.py": "from tdsae.pipeline import door\n",
                               "pipeline.py": "door = 1\n"})
    upward = [(a, b) for a, b, _, _ in imports_of(package) if LAYERS[part_of(b)] >= LAYERS[part_of(a)]]
    assert upward == [("tdsae.models", "tdsae.pipeline")]


@pytest.mark.parametrize("part", sorted(p for p in LAYERS if (PACKAGE / p).is_dir()))
def test_every_package_says_what_it_holds(part):
    doc = ast.get_docstring(ast.parse((PACKAGE / part / "__init__.py").read_text()))
    assert doc and len(doc.split()) >= 8, f"tdsae/{part}/__init__.py needs a docstring naming what it holds"
