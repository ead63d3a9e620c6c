"""Many rows in one statement, whatever the database.

On PostgreSQL each column's values go in as one array: an UPDATE or an INSERT of any
number of rows is one statement, `… FROM unnest(%(c0)s::type[], …)`, with the values
converted by the columns' own SQLAlchemy types first (aware timestamps, JSON), exactly as
an ORM or Core statement would have sent them. `executemany` would send one statement per
row; psycopg pipelines them, but every row still costs its own Python on the way out and
its own execution in the server.

SQLite has no arrays, and its `executemany` runs in C, so there these are Core
statements run once per row.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Column, ColumnElement, Connection, Table, Update, any_, bindparam, insert, update
from sqlalchemy.engine import Dialect
from sqlalchemy.types import ARRAY


def one_of(column: Column, values: Sequence[Any], dialect: Dialect) -> ColumnElement[bool]:
    """`column IN values`; on PostgreSQL `column = ANY(array)`: one parameter whatever the
    number of values, so the statement's text stays the same and the server can keep it
    prepared (an IN list is a new statement for every length)."""
    if dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def update_rows(
    connection: Connection, table: Table, *, key: str, columns: Sequence[str],
    rows: Sequence[Mapping[str, Any]], same: Mapping[str, Any] | None = None,
) -> None:
    """UPDATE `table` SET each of `columns` to the row's value WHERE `key` is the row's, for
    every row (on PostgreSQL in one statement); `same` sets further columns to one value
    for all of them."""
    if not rows:
        return
    same = dict(same or {})
    if connection.dialect.name != "postgresql":
        connection.execute(_update_statement(table, key, tuple(columns), tuple(same)),
                           [{**{f"row_{c}": row[c] for c in (key, *columns)},
                            **{f"same_{c}": v for c, v in same.items()}} for row in rows])
        return
    sql = _update_sql(table, key, tuple(columns), tuple(same))
    params = _arrays(connection.dialect, table, (key, *columns), rows)
    params.update({f"same_{name}": _convert(connection.dialect, table.c[name], value)
                   for name, value in same.items()})
    connection.exec_driver_sql(sql, params)


def insert_rows(
    connection: Connection, table: Table, *, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> None:
    """INSERT every row into `table`'s `columns` (on PostgreSQL in one statement)."""
    if not rows:
        return
    if connection.dialect.name != "postgresql":
        connection.execute(insert(table), [{c: row[c] for c in columns} for row in rows])
        return
    sql = _insert_sql(table, tuple(columns))
    connection.exec_driver_sql(sql, _arrays(connection.dialect, table, tuple(columns), rows))


def _arrays(dialect: Dialect, table: Table, names: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> dict:
    params = {}
    for k, name in enumerate(names):
        convert = _processor(dialect, table.c[name])
        values = [row[name] for row in rows]
        params[f"c{k}"] = [convert(v) for v in values] if convert else values
    return params


def _convert(dialect: Dialect, column: Column, value: Any) -> Any:
    convert = _processor(dialect, column)
    return convert(value) if convert else value


@functools.cache
def _processor(dialect: Dialect, column: Column) -> Callable[[Any], Any] | None:
    return column.type.dialect_impl(dialect).bind_processor(dialect)


@functools.cache
def _update_statement(table: Table, key: str, columns: tuple[str, ...], same: tuple[str, ...]) -> Update:
    # Bound names differ from the column names: SQLAlchemy reserves a SET column's own
    # name for the value it sets.
    values = {c: bindparam(f"row_{c}", type_=table.c[c].type) for c in columns}
    values.update({c: bindparam(f"same_{c}", type_=table.c[c].type) for c in same})
    where = table.c[key] == bindparam(f"row_{key}", type_=table.c[key].type)
    return update(table).where(where).values(values)


@functools.cache
def _update_sql(table: Table, key: str, columns: tuple[str, ...], same: tuple[str, ...]) -> str:
    names = (key, *columns)
    sets = [f"{c} = v.{c}" for c in columns] + [f"{c} = %(same_{c})s" for c in same]
    return (f"UPDATE {table.name} AS t SET {', '.join(sets)} "
            f"FROM {_unnest(table, names)} AS v({', '.join(names)}) WHERE t.{key} = v.{key}")


@functools.cache
def _insert_sql(table: Table, columns: tuple[str, ...]) -> str:
    return (f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"SELECT * FROM {_unnest(table, columns)} AS v({', '.join(columns)})")


def _unnest(table: Table, names: Sequence[str]) -> str:
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()
    casts = [f"%(c{k})s::{table.c[name].type.compile(dialect=dialect)}[]" for k, name in enumerate(names)]
    return f"unnest({', '.join(casts)})"
