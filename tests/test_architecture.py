"""The package's layout, checked with ``ast`` on every run (docs/internals.md, "Map").

- only ``npe/cli`` and the ``python -m npe`` shim import ``npe.cli`` (an ``if __name__ == '__main__'``
  block of a library module included: ``python -m npe.<module>`` shims live in ``npe/cli``);
- no import cycle among npe modules (imports inside functions count; an ``if __name__ == '__main__'``
  block is a shim's entry point, not an import of the module);
- no file in ``npe/`` over 500 lines, none in ``npe/cli/`` over 150;
- an argument parser is built in exactly one place.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "npe"
MAX_LINES = 500
MAX_CLI_LINES = 150
#: ``python -m`` entry points outside npe/cli: they may import npe.cli (their whole job is to call a
#: command). ``python -m npe`` needs its ``__main__`` in the package itself; every other one is a
#: module of npe/cli (``python -m npe.cli.train``).
SHIMS = {"npe.__main__"}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Every ``.py`` module of the package (the MMSeg config files under ``configs/`` are data)."""
    return {module_name(p, package): p for p in sorted(package.rglob("*.py"))
            if "configs" not in p.relative_to(package).parts}


def _is_main_guard(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators))


def _walk_outside_main_guard(tree: ast.AST, main_blocks: bool = False):
    """All nodes, except those of ``if __name__ == '__main__':`` blocks (unless ``main_blocks``)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(child for child in ast.iter_child_nodes(node) if main_blocks or not _is_main_guard(child))


def imports(path: Path, known: set[str], package: Path = PACKAGE, main_blocks: bool = False) -> set[str]:
    """The npe modules ``path`` imports anywhere (top level or inside functions), outside a main guard
    (inside one too with ``main_blocks``).

    ``from npe import x`` counts as importing ``npe.x`` when that is a module, else ``npe``.
    """
    name = module_name(path, package)
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in _walk_outside_main_guard(ast.parse(path.read_text(), str(path)), main_blocks):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return {m for m in found if m in known}


def graph(package: Path = PACKAGE, main_blocks: bool = False) -> dict[str, set[str]]:
    mods = modules(package)
    known = set(mods)
    return {name: imports(path, known, package, main_blocks) - {name} for name, path in mods.items()}


def cli_importers(package: Path = PACKAGE) -> list[str]:
    """Library modules that import ``npe.cli`` anywhere, ``__main__`` blocks included."""
    return sorted(f"{name} imports {', '.join(sorted(m for m in deps if m.startswith('npe.cli')))}"
                  for name, deps in graph(package, main_blocks=True).items()
                  if not name.startswith("npe.cli") and name not in SHIMS
                  and any(m == "npe.cli" or m.startswith("npe.cli.") for m in deps))


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def parser_constructions(package: Path = PACKAGE) -> list[str]:
    """``file:line`` of every call that builds an argparse parser (``ArgumentParser(...)`` or a
    subclass of it defined in the package)."""
    classes = {"ArgumentParser"}
    trees = {p: ast.parse(p.read_text(), str(p)) for p in modules(package).values()}
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                    (isinstance(b, ast.Attribute) and b.attr == "ArgumentParser")
                    or (isinstance(b, ast.Name) and b.id == "ArgumentParser") for b in node.bases):
                classes.add(node.name)
    places = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if called in classes:
                    places.append(f"{path.relative_to(package.parent)}:{node.lineno}")
    return places


def long_files(package: Path = PACKAGE) -> list[str]:
    out = []
    for path in sorted(package.rglob("*.py")):
        limit = MAX_CLI_LINES if "cli" in path.relative_to(package).parts else MAX_LINES
        n = len(path.read_text().splitlines())
        if n > limit:
            out.append(f"{path.relative_to(package.parent)}: {n} lines (limit {limit})")
    return out


# ---------------------------------------------------------------------------------------------- rules


def test_only_cli_and_shims_import_cli():
    offenders = cli_importers()
    assert not offenders, "library modules must not import the commands: " + "; ".join(offenders)


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_file_sizes():
    too_long = long_files()
    assert not too_long, "split these files: " + "; ".join(too_long)


def test_one_place_builds_argument_parsers():
    places = parser_constructions()
    assert len(places) == 1, ("argument parsers must come from npe.cli.common.make_parser (one-line "
                              "errors); built at: " + ", ".join(places))
    assert places[0].startswith("npe/cli/common.py:")


# ---------------------------------------------------------------------------------------------- the checker


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    pkg = tmp_path / "npe"
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    return pkg


def test_checker_sees_function_level_and_relative_imports(tmp_path):
    pkg = _tree(tmp_path, {
        "__init__.py": "",
        "a.py": "def f():\n    from npe import b\n",
        "b.py": "from .c import x\n",
        "c.py": "def g():\n    import npe.a\nif __name__ == '__main__':\n    import npe.b\n",
        "cli/__init__.py": "",
        "cli/main.py": "from npe import a\n",
    })
    edges = graph(pkg)
    assert edges["npe.a"] == {"npe.b"} and edges["npe.b"] == {"npe.c"} and edges["npe.c"] == {"npe.a"}
    assert find_cycle(edges) == ["npe.a", "npe.b", "npe.c", "npe.a"]
    assert find_cycle({"npe.a": {"npe.b"}, "npe.b": set()}) is None


def test_checker_sees_cli_imports_in_main_blocks(tmp_path):
    pkg = _tree(tmp_path, {
        "__init__.py": "",
        "__main__.py": "from npe.cli.run import main\n",
        "lib.py": "x = 1\nif __name__ == '__main__':\n    from npe.cli.run import main\n",
        "ok.py": "if __name__ == '__main__':\n    from npe import lib\n",
        "cli/__init__.py": "",
        "cli/run.py": "from npe import lib\nif __name__ == '__main__':\n    pass\n",
    })
    assert cli_importers(pkg) == ["npe.lib imports npe.cli.run"]
    assert graph(pkg)["npe.lib"] == set()   # import cycles: a main block is no import of the module


def test_checker_counts_parsers_and_lines(tmp_path):
    pkg = _tree(tmp_path, {
        "__init__.py": "",
        "cli/__init__.py": "",
        "cli/common.py": "import argparse\nclass P(argparse.ArgumentParser):\n    pass\n"
                         "def make():\n    return P()\n",
        "cli/other.py": "import argparse\np = argparse.ArgumentParser()\n" + "x = 1\n" * 150,
    })
    assert [p.split(":")[0] for p in parser_constructions(pkg)] == ["npe/cli/common.py", "npe/cli/other.py"]
    assert long_files(pkg) == ["npe/cli/other.py: 152 lines (limit 150)"]
