"""Imports go downward only: every ``octgen`` module is parsed with ``ast`` and each
of its imports of another ``octgen`` module, at module level or inside a function,
must point to a lower layer (or stay inside its own unit). And the import graph of
all modules, lazy imports included, has no cycle: an import moved into a function
to hide a cycle is still a cycle.

The layer order (bottom first), from ARCHITECTURE.md and the code:

0. foundations: the ``octgen`` package itself, ``errors``, ``_limits``
1. helpers every layer may use: ``_args`` (argparse types), ``export.atomic``
   (atomic writes), ``weights`` (checked model folders, shipped checkpoint paths)
2. ``octree``; 3. ``data`` (readers, datasets, SDF grids, bonds); 4. ``tokenize``;
5. ``model``; 6. ``metrics`` and ``condition`` (side by side: neither imports the
other); 7. ``export`` (mesh and molecule writers); 8. ``sampling``; 9. ``pipeline``;
10. ``train``'s building blocks (config, objectives, shards, the VQ-VAE and classifier
jobs; they export pipelines); 11. ``modality`` (what differs between modalities, built
from those blocks); 12. ``train.trainer`` (the one loop, driven by a modality);
13. ``bench``; 14. ``cli``; 15. ``app.py``.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Units, bottom layer first; a module belongs to the unit of its longest matching prefix.
LAYERS: list[tuple[str, ...]] = [
    ("octgen", "octgen.errors", "octgen._limits"),
    ("octgen._args", "octgen.export.atomic", "octgen.weights"),
    ("octgen.octree",),
    ("octgen.data",),
    ("octgen.tokenize",),
    ("octgen.model",),
    ("octgen.metrics", "octgen.condition"),
    ("octgen.export",),
    ("octgen.sampling",),
    ("octgen.pipeline",),
    ("octgen.train",),
    ("octgen.modality",),
    ("octgen.train.trainer",),
    ("octgen.bench",),
    ("octgen.cli",),
    ("app",),
]

# Upward imports being removed by work in progress elsewhere (issue #10's modality
# refactor). Each entry must still occur, so the list shrinks as they are fixed.
KNOWN_UPWARD: set = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    files = sorted((ROOT / "octgen").rglob("*.py")) + [ROOT / "app.py"]
    return {_module_name(p): p for p in files}


SOURCES = _sources()


def _resolve(name: str) -> str:
    """The module an imported name lives in: the longest prefix that is a module."""
    while name not in SOURCES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _imports(module: str, path: Path, text: str | None = None) -> list[tuple[str, int, bool]]:
    """(imported octgen module, line, inside a function) for every import statement."""
    tree = ast.parse(path.read_text() if text is None else text, filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []

    def visit(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[:len(package.split(".")) - (child.level - 1)]
                    base = ".".join(base + ([child.module] if child.module else []))
                else:
                    base = child.module or ""
                names = [f"{base}.{a.name}" for a in child.names]
            else:
                visit(child, nested)
                continue
            for name in names:
                if name == "octgen" or name.startswith("octgen.") or name == "app":
                    out.append((_resolve(name), child.lineno, in_function))
    visit(tree, False)
    return out


def _unit(module: str) -> tuple[int, str]:
    best = None
    for rank, units in enumerate(LAYERS):
        for unit in units:
            if (module == unit or module.startswith(unit + ".")) and (best is None or len(unit) > len(best[1])):
                best = (rank, unit)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


EDGES = {m: _imports(m, p) for m, p in SOURCES.items()}


def _upward() -> list[tuple[str, str, int, bool]]:
    bad = []
    for module, imports in EDGES.items():
        rank, unit = _unit(module)
        for target, line, in_function in imports:
            t_rank, t_unit = _unit(target)
            if t_unit != unit and t_rank >= rank:
                bad.append((module, target, line, in_function))
    return bad


def test_every_module_has_a_layer():
    for module in SOURCES:
        _unit(module)


def test_imports_point_to_lower_layers():
    bad = [b for b in _upward() if (b[0], b[1]) not in KNOWN_UPWARD]
    assert not bad, "upward imports:\n" + "\n".join(
        f"  {m} (line {line}, {'in a function' if fn else 'module level'}) imports {t}" for m, t, line, fn in bad)


def test_known_upward_imports_still_exist():
    # When one is fixed, delete it from KNOWN_UPWARD so it cannot come back.
    found = {(b[0], b[1]) for b in _upward()}
    assert KNOWN_UPWARD <= found, f"fixed, remove from KNOWN_UPWARD: {sorted(KNOWN_UPWARD - found)}"


def test_no_import_cycles_even_through_lazy_imports():
    graph = {m: {t for t, _, _ in imports if t != m} for m, imports in EDGES.items()}
    # Tarjan's strongly connected components; any component of two or more is a cycle.
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def strongconnect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checker_sees_imports_inside_functions():
    probe = ROOT / "octgen" / "bench" / "shapes.py"
    text = "import numpy\n\ndef f():\n    from ..cli.generate import x\n    from . import timing\n"
    got = _imports("octgen.bench.shapes", probe, text)
    assert got == [("octgen.cli.generate", 4, True), ("octgen.bench.timing", 5, True)]
    assert _unit("octgen.cli.generate")[0] > _unit("octgen.bench.shapes")[0]
