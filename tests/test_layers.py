"""The package's layers (issue 32): no import circle, no import from a lower layer to a higher one,
no module over 450 lines, and ``AugDataModule`` a composer of at most 300 lines.

Layers, lowest first: the base (``_checks``, ``errors``, ``seeding``, ``secrets``, ``hparams``,
``trust``, ``targets``); ``data`` and ``device`` (neither imports the other); ``presets``,
``datamodule``, ``models``, ``consistency`` and ``monitor``; the apps (``cli``, ``bench``, their
config tree ``conf``); the package's public names.
Imports inside functions count: a lazy import that runs back up is still a circle.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import lightning_aug.datamodule

PACKAGE = Path(lightning_aug.datamodule.__file__).resolve().parent
LAYERS = [
    ("lightning_aug.conf", 4),  # the apps' config tree (its resolvers call the presets)
    ("lightning_aug.cli", 4),
    ("lightning_aug.bench", 4),
    ("lightning_aug.datamodule", 3),
    ("lightning_aug.models", 3),
    ("lightning_aug.presets", 3),
    ("lightning_aug.consistency", 3),
    ("lightning_aug.monitor", 3),
    ("lightning_aug.data", 1),
    ("lightning_aug.device", 1),
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("lightning_aug", *path.relative_to(PACKAGE).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()

    def resolve(name: str) -> str | None:
        parts = name.split(".")
        while parts and ".".join(parts) not in modules:
            parts.pop()
        return ".".join(parts) or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {resolve(a.name) for a in node.names if a.name.startswith("lightning_aug")}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    kept = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*kept, base] if base else kept)
                if base.startswith("lightning_aug"):
                    imported |= {resolve(f"{base}.{a.name}") for a in node.names}
        graph[name] = {m for m in imported if m is not None and m != name}
    return graph


def _layer(module: str) -> int:
    if module == "lightning_aug":
        return 5  # the public names (imported lazily)
    return next((n for prefix, n in LAYERS if module == prefix or module.startswith(f"{prefix}.")), 0)


def _part(module: str) -> str:
    """The subpackage of ``module`` (``data``, ``device``, ...; ``""`` for the package itself)."""
    return [*module.split("."), ""][1]


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return circles


def test_the_import_graph_has_no_circle() -> None:
    assert _circles(_graph()) == []


def test_no_import_runs_up_a_layer() -> None:
    upward = [
        f"{module} -> {other}"
        for module, imported in sorted(_graph().items())
        for other in sorted(imported)
        if _layer(other) > _layer(module) or {_part(module), _part(other)} == {"data", "device"}
    ]
    assert upward == []


def test_the_check_sees_a_circle_and_an_upward_import() -> None:
    """The control: the checks above fail where they should."""
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _layer("lightning_aug.data.loader") < _layer("lightning_aug.datamodule")


def test_no_module_is_over_450_lines_and_the_datamodule_composes_in_300() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 450
    }
    assert long == {}
    source, _ = inspect.getsourcelines(lightning_aug.datamodule.AugDataModule)
    assert len(source) <= 300


def test_every_package_of_the_checkout_ships_in_the_wheel() -> None:
    """Each folder of ``lightning_aug/`` with an ``__init__.py`` is in pyproject's package list (the
    wheel has only those: a new subpackage missing there imports in the checkout and nowhere else)."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    source = root / "lightning_aug"
    found = {
        ".".join(("lightning_aug", *init.parent.relative_to(source).parts))
        for init in source.rglob("__init__.py")
    }
    assert found - listed == set()
    assert listed - found <= {"lightning_aug.conf"}  # conf/ at the top, mapped in package-dir
