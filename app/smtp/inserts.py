"""Writing a group commit's new rows with one Core INSERT a table (``executemany``).

The domain code (``ingest.receive`` and what it calls) builds its rows as ORM objects,
the one place their rules live. The unit of work would then spend more CPU on those
objects than the rest of the DATA transaction, mostly on bookkeeping: which object
depends on which, what changed, what to expire. A received message's rows are all new
and only ever inserted, so ``insert_new`` writes them itself: each table's rows of the
whole group in one INSERT, parents first, their new ids handed to the children's
foreign keys. When rows already stored changed as well (first contact), it leaves the
whole group to the ORM's own flush.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache

from sqlalchemy import insert, inspect
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.orm.interfaces import MANYTOONE

from app.extensions import db


def insert_new(session: Session) -> None:
    """Write every new object of ``session`` with one INSERT a table, and set the ids of
    those that others point at (a message's, a recipient's); they and every other
    object leave the session (nothing reads them after the commit but those ids).

    When objects already in the database changed too (first contact: its account's
    savepoint flushed the group's earlier rows, which then go on changing), the ORM
    flushes the lot, as it would have: mixing the two would leave it collections that
    point at objects it no longer has.
    """
    if session.dirty:
        session.flush()
        return
    pending: dict[Mapper, list] = defaultdict(list)
    new = list(session.new)
    for obj in new:
        pending[inspect(obj).mapper].append(obj)
    # all at once: expunging each new object cascaded through its relationships, and
    # what the group looked up (its tenant, policies) is not read after this either
    session.expunge_all()
    order = _table_order()
    connection = session.connection()
    # the ids of rows that others point at come back (RETURNING); the others' need not
    parents = {relationship.mapper for mapper in pending
               for relationship in _many_to_one(mapper)}
    for mapper in sorted(pending, key=lambda mapper: order[mapper.local_table]):
        _insert(connection, mapper, pending[mapper], mapper in parents)


@cache
def _table_order() -> dict:
    """Each table's place, parents first (``sorted_tables`` sorts them again each time)."""
    return {table: position for position, table in enumerate(db.metadata.sorted_tables)}


def _insert(connection, mapper: Mapper, objects: list, ids_wanted: bool) -> None:
    table = mapper.local_table
    for obj in objects:  # e.g. a recipient takes its message's received_at
        mapper.dispatch.before_insert(mapper, connection, inspect(obj))
    # rows with the same columns go in one statement: executemany needs one shape
    shapes: dict[tuple, list] = defaultdict(list)
    for obj in objects:
        row = _row(mapper, obj)
        shapes[tuple(row)].append((obj, row))
    statement = _statement(table, ids_wanted)
    for rows in shapes.values():
        if not ids_wanted:
            connection.execute(statement, [row for _, row in rows])
            continue
        ids = connection.execute(statement, [row for _, row in rows]).scalars().all()
        key = mapper.get_property_by_column(mapper.primary_key[0]).key
        for (obj, _), new_id in zip(rows, ids, strict=True):
            inspect(obj).dict[key] = new_id


@cache
def _statement(table, ids_wanted: bool):
    """The INSERT for ``table``, made once: building it again at each group cost more
    than executing it."""
    statement = insert(table)
    if ids_wanted:
        return statement.returning(table.primary_key.columns[0], sort_by_parameter_order=True)
    return statement


def _row(mapper: Mapper, obj) -> dict:
    """The column values of ``obj`` as the ORM would insert them: what was set, foreign
    keys from the objects its many-to-one relationships point at, and no key for a
    None that a column default (or the primary key) should fill."""
    values = inspect(obj).dict
    columns, filled = _columns(mapper)
    row = {column: values[attribute] for column, attribute in columns if attribute in values}
    for relationship in _many_to_one(mapper):
        if relationship.key not in values:
            continue
        target = values[relationship.key]
        for local, remote in relationship.local_remote_pairs:
            row[local.key] = None if target is None else getattr(
                target, inspect(target).mapper.get_property_by_column(remote).key)
    return {name: value for name, value in row.items() if value is not None
            or name not in filled}


@cache
def _columns(mapper: Mapper) -> tuple[tuple[tuple[str, str], ...], frozenset[str]]:
    """Each column's key and attribute's, and the columns a None leaves to the database
    (the primary key, a default): the same for every row, so worked out once."""
    table = mapper.local_table
    return (tuple((column.key, mapper.get_property_by_column(column).key)
                  for column in table.columns),
            frozenset(column.key for column in table.columns if column.primary_key
                      or column.default is not None or column.server_default is not None))


@cache
def _many_to_one(mapper: Mapper) -> tuple:
    return tuple(relationship for relationship in mapper.relationships
                 if relationship.direction is MANYTOONE)
