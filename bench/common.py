"""Shared pieces of the benchmarks: databases of both kinds, timing, and printing."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import Engine

from core.db import make_engine, migrate

OUT_DIR = Path(__file__).resolve().parent / "out"


@contextlib.contextmanager
def databases(kinds: tuple[str, ...] = ("sqlite", "postgresql"), *, name: str) -> Iterator[dict[str, Engine]]:
    """A fresh migrated database of each kind: a SQLite file, and a throwaway PostgreSQL server."""
    from tests.support.pg_server import PostgresUnavailable, start_server

    engines: dict[str, Engine] = {}
    server = None
    try:
        if "sqlite" in kinds:
            OUT_DIR.mkdir(exist_ok=True)
            path = OUT_DIR / f"{name}.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            engines["sqlite"] = make_engine(f"sqlite:///{path}")
        if "postgresql" in kinds:
            try:
                server = start_server()
                engines["postgresql"] = make_engine(server.url())
            except PostgresUnavailable as exc:
                print(f"(PostgreSQL skipped: {exc})")
        for engine in engines.values():
            migrate(engine)
        yield engines
    finally:
        for engine in engines.values():
            engine.dispose()
        if server is not None:
            server.destroy()


def median_seconds(fn: Callable[[], object], *, runs: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    line = lambda cells: "  ".join(str(c).rjust(w) for c, w in zip(cells, widths, strict=False))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])
