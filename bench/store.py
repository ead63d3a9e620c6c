"""The benchmark databases: the synthetic history loaded into SQLite and PostgreSQL, cached per scale.

A build loads the rows at schema revision 0001 (COPY on PostgreSQL, executemany in big
transactions on SQLite), then migrates to head, which adds the rollups and backfills them
from the loaded rows, exactly as an existing installation would be upgraded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from sqlalchemy import Engine, text

from bench import history
from bench.common import OUT_DIR
from core.db import make_engine, migrate
from tests.support.pg_server import PostgresServer, PostgresUnavailable, _bin_dir, _free_port

PG_DATABASE = "bench"


def cache_key(scale: int) -> str:
    return f"history-v{history.VERSION}-{scale}"


# --- loading ---------------------------------------------------------------------------------


def build(engine: Engine, scale: int, *, end: object = None) -> dict[str, float]:
    """Load the history of `scale` recipients into the empty database behind `engine`;
    returns the seconds each step took."""
    blasts = history.make_blasts(scale, end=end or history.build_end_date())
    timings: dict[str, float] = {}
    start = time.perf_counter()
    migrate(engine, "0001")
    load = _load_postgres if engine.dialect.name == "postgresql" else _load_sqlite
    load(engine, history.batches(blasts))
    timings["load"] = time.perf_counter() - start
    start = time.perf_counter()
    migrate(engine)
    timings["migrate to head (rollup backfill)"] = time.perf_counter() - start
    start = time.perf_counter()
    analyse(engine)
    timings["analyse"] = time.perf_counter() - start
    return timings


def _load_sqlite(engine: Engine, batches: Iterable[history.Batch]) -> None:
    raw = engine.raw_connection()
    try:
        conn: sqlite3.Connection = raw.driver_connection  # type: ignore[assignment]
        conn.execute("PRAGMA synchronous=OFF")  # a crashed build is thrown away anyway
        conn.execute("PRAGMA cache_size=-262144")
        for batch in batches:
            conn.execute("BEGIN")
            conn.executemany(_insert_sql("blasts", history.BLAST_COLUMNS), batch.blasts)
            conn.executemany(_insert_sql("blast_recipients", history.RECIPIENT_COLUMNS), batch.recipients)
            conn.executemany(_insert_sql("status_history", history.HISTORY_COLUMNS), batch.history)
            conn.execute("COMMIT")
    finally:
        raw.close()


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _load_postgres(engine: Engine, batches: Iterable[history.Batch]) -> None:
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        conn.execute("SET TimeZone = 'UTC'")  # the timestamps are UTC text
        for batch in batches:
            with conn.cursor() as cursor:
                _copy(cursor, "blasts", history.BLAST_COLUMNS, batch.blasts)
                _copy(cursor, "blast_recipients", history.RECIPIENT_COLUMNS, batch.recipients)
                _copy(cursor, "status_history", history.HISTORY_COLUMNS, batch.history)
            conn.commit()
        for table in ("blasts", "blast_recipients"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                         f"(SELECT max(id) FROM {table}))")
        conn.commit()
    finally:
        raw.close()


def _copy(cursor, table: str, columns: tuple[str, ...], rows: Iterable[tuple]) -> None:  # type: ignore[no-untyped-def]
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def analyse(engine: Engine) -> None:
    """Fresh statistics and, on PostgreSQL, a set visibility map: as a database that has
    been running a while would have, so the plan's query gets its index-only scans."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:  # the engine's last connection to close folds the WAL
            conn.exec_driver_sql("ANALYZE")


# --- the cached databases --------------------------------------------------------------------


def cached_sqlite(scale: int, *, rebuild: bool = False, out_dir: Path = OUT_DIR) -> tuple[str, dict]:
    """The URL of the SQLite history at `scale`, built unless a finished one is cached."""
    path = out_dir / f"{cache_key(scale)}.db"
    report_path = path.with_suffix(".json")
    if rebuild or not report_path.exists():
        _remove_sqlite(path)
        report_path.unlink(missing_ok=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(f"sqlite:///{path}")
        timings = build(engine, scale)
        engine.dispose()
        report_path.write_text(json.dumps({"scale": scale, "build_seconds": timings}))
    return f"sqlite:///{path}", json.loads(report_path.read_text())


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


class CachedPostgres(PostgresServer):
    """A PostgreSQL cluster whose data directory stays under bench/out/ between runs.

    Started with the same settings as the tests' throwaway server (fsync off), on a free
    port each time; stopped cleanly at the end of a run so the files stay usable.
    """

    def __init__(self, root: Path) -> None:  # no super(): that one makes a temporary folder
        self.bin = _bin_dir()
        self.root = root
        self.data = root / "data"
        self.port = _free_port()
        self._as_root = os.geteuid() == 0
        root.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            shutil.chown(root, "postgres", "postgres")
            os.chmod(root, 0o700)

    @property
    def built(self) -> bool:
        return (self.root / "built.json").exists()

    def open(self) -> CachedPostgres:
        if not (self.data / "PG_VERSION").exists():
            self.init()
        if (self.data / "postmaster.pid").exists():  # left running by a run that was killed
            with contextlib.suppress(PostgresUnavailable):
                self.stop(mode="immediate")
        return self.start()

    def create_database(self) -> None:
        engine = make_engine(self.url("postgres"))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {PG_DATABASE}"))
            conn.execute(text(f"CREATE DATABASE {PG_DATABASE}"))
        engine.dispose()


@contextlib.contextmanager
def cached_postgres(
    scale: int, *, rebuild: bool = False, out_dir: Path = OUT_DIR
) -> Iterator[tuple[CachedPostgres, dict]]:
    """A running server holding the PostgreSQL history at `scale`, built unless cached."""
    root = out_dir / f"pg-{cache_key(scale)}"
    if rebuild:
        shutil.rmtree(root, ignore_errors=True)
    server = CachedPostgres(root).open()
    try:
        if not server.built:
            server.create_database()
            engine = make_engine(server.url(PG_DATABASE))
            timings = build(engine, scale)
            engine.dispose()
            _write_as_server(server, {"scale": scale, "build_seconds": timings})
        yield server, json.loads((root / "built.json").read_text())
    finally:
        with contextlib.suppress(PostgresUnavailable):
            server.stop(mode="fast")


def _write_as_server(server: CachedPostgres, report: dict) -> None:
    path = server.root / "built.json"
    path.write_text(json.dumps(report))
    if server._as_root:
        shutil.chown(path, "postgres", "postgres")
