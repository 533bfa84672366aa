"""The package's layers, drawn from the code's own imports (docs/layers.md).

Every import statement of every module counts, the ones inside functions too:
a lazy import is still an arrow. A layer imports only itself and the layers
below it; nothing outside ``squall.systems`` imports a system; no module
imports another package's private name; no two folders import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "squall"
GROUND = "ground"
# What each part may import (besides itself). ``systems`` may import anything of the suite.
ALLOWED: dict[str, set[str]] = {
    GROUND: set(),
    "cluster": {GROUND},
    "checkers": {GROUND},
    "nemesis": {GROUND, "cluster"},
    "workloads": {GROUND, "checkers"},
    "report": {GROUND, "checkers", "nemesis"},
    "run": {GROUND, "cluster", "checkers", "nemesis", "workloads", "report"},
    "cli": {GROUND, "cluster", "checkers", "nemesis", "workloads", "report", "run"},
    "systems": {GROUND, "cluster", "checkers", "nemesis", "workloads", "report", "run"},
}


def part_of(module: str) -> str:
    """The layer of ``squall.x.y``: its first component, or ground for the top-level modules."""
    parts = module.split(".")
    if len(parts) < 2:
        return GROUND
    if parts[1] in ("cli", "launch"):  # launch: the console script in front of the CLI
        return "cli"
    return parts[1] if parts[1] in ALLOWED else GROUND


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((mod, [a.name for a in node.names]))
    return out


def edges() -> list[tuple[str, str, list[str]]]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        src = module_name(path)
        if src.startswith("squall.systems.aurora.store"):
            continue  # the store itself: checked below, it imports nothing of the suite
        for mod, names in imports(path):
            if mod == "squall" or mod.startswith("squall."):
                found.append((src, mod, names))
    return found


def test_no_layer_imports_one_above_it() -> None:
    wrong = [
        f"{src} imports {dst}"
        for src, dst, _ in edges()
        if part_of(dst) != part_of(src) and part_of(dst) not in ALLOWED[part_of(src)]
    ]
    assert wrong == []


def test_nothing_outside_the_systems_imports_a_system() -> None:
    wrong = [
        f"{src} imports {dst}"
        for src, dst, _ in edges()
        if dst.startswith("squall.systems") and not src.startswith("squall.systems")
    ]
    assert wrong == []


def test_the_store_imports_nothing_of_the_suite() -> None:
    store = ROOT / "systems" / "aurora" / "store"
    wrong = [
        f"{p.name} imports {mod}"
        for p in store.rglob("*.py")
        for mod, _ in imports(p)
        if (mod == "squall" or mod.startswith("squall."))
        and not mod.startswith("squall.systems.aurora.store")
    ]
    assert wrong == []


def test_no_private_name_is_imported_across_packages() -> None:
    wrong = []
    for src, dst, names in edges():
        src_pkg, dst_pkg = src.rsplit(".", 1)[0], dst.rsplit(".", 1)[0]
        privates = [n for n in names if n.startswith("_") and n != "__version__"]
        leaf_private = dst.rsplit(".", 1)[-1].startswith("_")
        if src_pkg != dst_pkg and (privates or leaf_private) and not dst.startswith(src_pkg):
            wrong.append(f"{src} imports {', '.join(privates) or dst}")
    assert wrong == []


def _file_of(module: str) -> str | None:
    """The module a dotted name ends at (a package's __init__, or a module file)."""
    path = ROOT.parent / module.replace(".", "/")
    if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
        return module
    return None


def test_no_import_cycle_crosses_folders() -> None:
    import networkx as nx

    graph = nx.DiGraph()
    for src, dst, names in edges():
        targets = [t for t in (_file_of(f"{dst}.{n}") for n in names) if t] or [_file_of(dst)]
        graph.add_edges_from((src, t) for t in targets if t and t != src)
    crossing = []
    for scc in nx.strongly_connected_components(graph):
        folders = {
            m if (ROOT.parent / m.replace(".", "/")).is_dir() else m.rsplit(".", 1)[0] for m in scc
        }
        if len(scc) > 1 and len(folders) > 1:
            crossing.append(sorted(scc))
    assert crossing == []
