"""One vocabulary (app/models/vocabulary.py): a state, route, role, side or mode exists in
its enumeration, fits the column that stores it, and is the one the code uses.

The database has no CHECK constraints (the columns are plain strings, and
tests/test_migrations.py holds the models and the migrations together), so what
"exists" means is what the code writes and reads: every string literal that the code
compares with, assigns to or passes as one of these attributes must be a member, and
every member must be used somewhere. A new state added in one place only fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.domain import routing
from app.models import (
    FALLBACKS,
    POLICY_KINDS,
    ROLES,
    ROUTES,
    TLS_LEVELS,
    Draft,
    Fallback,
    Mode,
    OutboundItem,
    Policy,
    PolicyKind,
    QueueState,
    Recipient,
    RecipientState,
    Role,
    Route,
    Side,
    TlsLevel,
    User,
)

APP = Path(__file__).resolve().parents[1] / "app"
ENUMS = (Route, Side, Role, Mode, RecipientState, QueueState, PolicyKind, TlsLevel, Fallback)

#: the columns each word is stored in
COLUMNS = [
    (Route, Recipient.route), (Route, OutboundItem.route),
    (Side, Recipient.kind), (Side, User.kind), (Role, User.role),
    (Mode, Draft.mode),
    (RecipientState, Recipient.state), (QueueState, OutboundItem.state),
    (PolicyKind, Policy.kind),
    (TlsLevel, Policy.tls), (TlsLevel, Recipient.tls),
    (Fallback, Policy.fallback), (Fallback, Recipient.fallback),
]

#: attribute or keyword name -> the enumerations a string literal given to it is a word of.
#: ``kind`` names too many things (events, outbound items, templates) to be checked so.
NAMED = {
    "state": (RecipientState, QueueState),
    "route": (Route,),
    "role": (Role,),
    "mode": (Mode,),
    "tls": (TlsLevel,),
    "fallback": (Fallback,),
}


@pytest.mark.parametrize(("words", "column"), COLUMNS,
                         ids=[f"{w.__name__}-{c}" for w, c in COLUMNS])
def test_every_word_fits_its_column(words, column):
    length = column.property.columns[0].type.length
    assert max(len(word) for word in words) <= length


def test_the_older_tuples_are_the_enumerations():
    assert tuple(Route) == ROUTES and tuple(Role) == ROLES and tuple(Mode) == routing.MODES
    assert tuple(PolicyKind) == POLICY_KINDS and tuple(TlsLevel) == TLS_LEVELS
    assert tuple(Fallback) == FALLBACKS


def test_words_shared_between_enumerations_mean_the_same_text():
    """An internal recipient goes by the internal route; internal users are internal."""
    assert set(Side) <= set(Route) and set(Side) <= set(Role)
    assert Mode.EXTERNAL == Side.EXTERNAL


def _literals(node: ast.AST) -> list[str]:
    """The string constants ``node`` is, or holds (a tuple or list of them)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [v for element in node.elts for v in _literals(element)]
    if isinstance(node, ast.IfExp):
        return _literals(node.body) + _literals(node.orelse)
    return []


def _name(node: ast.AST) -> str | None:
    """``state`` for ``recipient.state``, ``Recipient.state`` or a bare ``state``."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def uses() -> tuple[list[tuple[str, str, str]], set[tuple[str, str]]]:
    """(where, name, literal) for each literal given to a NAMED attribute in app/, and
    (enumeration, member) for every ``Enum.MEMBER`` the code names."""
    literals, members = [], set()
    enum_names = {words.__name__ for words in ENUMS}
    for path in APP.rglob("*.py"):
        if "migrations" in path.parts or path.name == "vocabulary.py":
            continue
        where = str(path.relative_to(APP.parent))
        for node in ast.walk(ast.parse(path.read_text())):
            pairs = []
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                pairs = [(a, b) for a in sides for b in sides if a is not b]
            elif isinstance(node, ast.Assign):
                pairs = [(target, node.value) for target in node.targets
                         if isinstance(target, ast.Attribute)]
            elif isinstance(node, ast.keyword) and node.arg:
                pairs = [(ast.Name(id=node.arg), node.value)]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr == "in_" and node.args:  # Column.in_(("a", "b"))
                pairs = [(node.func.value, node.args[0])]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                    node.value.id in enum_names:
                members.add((node.value.id, node.attr))
            for named, value in pairs:
                name = _name(named)
                if name in NAMED:
                    literals += [(where, name, literal) for literal in _literals(value)]
    return literals, members


def test_every_literal_state_route_role_or_mode_is_a_member():
    unknown = [f"{where}: {name} {literal!r}" for where, name, literal in uses()[0]
               if not any(literal in set(words) for words in NAMED[name])]
    assert unknown == []


@pytest.mark.parametrize("words", ENUMS, ids=lambda words: words.__name__)
def test_every_member_is_used_somewhere(words):
    """A member that nothing writes or reads is a word added in one place only."""
    literals, members = uses()
    used = {words[member] for enum, member in members if enum == words.__name__}
    used |= {words(literal) for _where, name, literal in literals
             if words in NAMED.get(name, ()) and literal in set(words)}
    assert set(words) - used == set()
