"""Many rows in one statement, whatever the database.

On PostgreSQL the rows go in as one JSON document, `… FROM json_to_recordset(%(rows)s)
AS v(column type, …)`: an UPDATE or an INSERT of any number of rows is one statement
with one parameter. The values are converted by the columns' own SQLAlchemy types first
(aware timestamps), exactly as an ORM or Core statement would have sent them; JSON columns
go in as the JSON they hold. `executemany` would send one statement per row, and arrays
(`unnest(%(c0)s::type[], …)`, as first built) are escaped element by element in Python by
the driver, where `json.dumps` encodes the whole document in C.

SQLite has no arrays, and its `executemany` runs in C, so there these are Core
statements run once per row.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Column, ColumnElement, Connection, Table, Update, any_, bindparam, insert, update
from sqlalchemy.engine import Dialect
from sqlalchemy.types import ARRAY, JSON


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
    params = {"rows": _document(connection.dialect, table, (key, *columns), rows)}
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
    connection.exec_driver_sql(sql, {"rows": _document(connection.dialect, table, tuple(columns), rows)})


def _document(dialect: Dialect, table: Table, names: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as a JSON array of objects, each value as its column's type binds it."""
    converters = [(name, _json_processor(dialect, table.c[name])) for name in names]
    document = [{name: convert(row[name]) if convert else row[name] for name, convert in converters}
                for row in rows]
    return json.dumps(document, default=json_scalar, separators=(",", ":"))


def json_scalar(value: Any) -> Any:
    """`json.dumps`'s `default` for the values rows hold besides JSON's own."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} cannot go into a JSON row document")


@functools.cache
def _json_processor(dialect: Dialect, column: Column) -> Callable[[Any], Any] | None:
    # A JSON column's value is part of the document as it is; its bind processor would
    # turn it into a string of JSON.
    if isinstance(column.type.dialect_impl(dialect), JSON):
        return None
    return _processor(dialect, column)


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
    sets = [f"{c} = v.{c}" for c in columns] + [f"{c} = %(same_{c})s" for c in same]
    return (f"UPDATE {table.name} AS t SET {', '.join(sets)} "
            f"FROM {_recordset(table, (key, *columns))} WHERE t.{key} = v.{key}")


@functools.cache
def _insert_sql(table: Table, columns: tuple[str, ...]) -> str:
    return (f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"SELECT {', '.join(columns)} FROM {_recordset(table, columns)}")


def _recordset(table: Table, names: Sequence[str]) -> str:
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()
    typed = [f"{name} {table.c[name].type.compile(dialect=dialect)}" for name in names]
    return f"json_to_recordset(%(rows)s::json) AS v({', '.join(typed)})"
