"""The tree is the architecture: imports go one way, down the layers, and never round.

    web, smtp, worker, cli, delivery.runner   (the ways in: HTTP, SMTP, schedule, shell)
        -> domain                             (plain functions: no request, no session)
            -> delivery (queue, transport, DSN, DKIM, templates)
                -> models, mail, clock, config, extensions, database

docs/architecture.md draws the same picture. A module may import its own layer or any
below it, never one above; the ways in do not import each other, except that the shell
(``cli``) and the application factory start the others, and the worker runs the
delivery runner. No two modules import each other, directly or round a longer cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"

#: (prefix, layer): the longest matching prefix decides
LAYERS = [
    ("app.clock", 0), ("app.config", 0), ("app.config_values", 0), ("app.extensions", 0),
    ("app.logs", 0), ("app.metrics", 0), ("app.words", 0),
    ("app.database", 0),
    ("app.models", 0), ("app.mail", 0),
    ("app.delivery", 1),
    ("app.domain", 2), ("app.mail_clients", 2),
    ("app.delivery.runner", 3), ("app.web", 3), ("app.smtp", 3), ("app.worker", 3),
    ("app.cli", 4), ("app", 4),
]
#: the ways in (layer 3) that may import another way in: it starts or runs it
WAYS_IN_MAY_IMPORT = {"app.worker": {"app.delivery.runner"}}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(APP.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in APP.rglob("*.py") if "migrations" not in p.parts}


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The app modules ``path`` imports when it runs, anywhere in it (function-local ones
    too; not those only a type checker reads, under ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name in known}


def layer(name: str) -> int:
    matches = [(len(p), n) for p, n in LAYERS if name == p or name.startswith(p + ".")]
    return max(matches)[1]


def way_in(name: str) -> str:
    return next(p for p, n in sorted(LAYERS, key=lambda x: -len(x[0]))
                if n == 3 and (name == p or name.startswith(p + ".")))


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) - {name} for name, path in known.items()}


def test_every_module_has_a_layer(graph):
    for name in graph:
        layer(name)


def test_no_module_imports_a_layer_above_its_own(graph):
    upward = [f"{name} (layer {layer(name)}) imports {target} (layer {layer(target)})"
              for name, targets in graph.items() for target in targets
              if layer(target) > layer(name)]
    assert upward == []


def test_the_ways_in_do_not_import_each_other(graph):
    crossing = []
    for name, targets in graph.items():
        if layer(name) != 3:
            continue
        for target in targets:
            if layer(target) == 3 and way_in(target) != way_in(name) and \
                    target not in WAYS_IN_MAY_IMPORT.get(way_in(name), set()):
                crossing.append(f"{name} imports {target}")
    assert crossing == []


def test_no_import_cycles(graph):
    """A package's ``__init__`` importing its own modules (a blueprint attaching its
    routes) is how Flask packages are built, not a cycle between two parts."""
    edges = {name: {t for t in targets if not t.startswith(name + ".")}
             for name, targets in graph.items()}
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges[node]):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert cycles == []


# --- one clock ----------------------------------------------------------------------

#: TODO(lead): modules other branches were editing when the clock became one seam; once
#: merged, they too say ``from app import clock`` and ``clock.utcnow()``, and this empties.
#: (app/clock.py keeps its frozen time in itself, so tests move their time already.)
UTCNOW_IMPORTED_BY_NAME: set[str] = set()


def test_every_module_asks_the_one_clock():
    """``from app import clock``, then ``clock.utcnow()``: one seam a test moves."""
    by_name = {name for name, path in modules().items()
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.ImportFrom) and node.module == "app.clock"}
    assert by_name == UTCNOW_IMPORTED_BY_NAME


# --- one reading of the settings ------------------------------------------------------

#: where Flask's ``current_app`` may be read below the ways in: the settings accessor
#: itself. (None of the modules other branches were editing reads it; add one here only
#: with a TODO naming it, for whoever converts it to ``config.settings()``.)
CURRENT_APP_BELOW_THE_WAYS_IN = {"app.config"}


def test_below_the_ways_in_settings_come_from_the_one_accessor():
    """Domain, delivery and foundation code asks ``app.config.settings()`` and logs to
    its own logger; only the ways in (views, commands, the runner) use ``current_app``."""
    readers = set()
    for name, path in modules().items():
        if layer(name) >= 3:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "flask" and \
                    any(alias.name == "current_app" for alias in node.names):
                readers.add(name)
            elif isinstance(node, ast.Attribute) and node.attr == "current_app":
                readers.add(name)  # flask.current_app
    assert readers == CURRENT_APP_BELOW_THE_WAYS_IN
