"""Shared pieces of the benchmarks: databases of both kinds, timing, and printing."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import sqlite3
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import sqlalchemy
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

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


def empty_inbox(session: Session) -> None:
    """Delete every webhook inbox entry. The histories hold none: whatever is there, a
    benchmark run left (one that was killed), and the server's replay loop would take it up
    in the middle of the next run's rounds."""
    session.execute(text("DELETE FROM webhook_inbox"))


def median_seconds(fn: Callable[[], object], *, runs: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved(fns: dict[str, Callable[[], object]], *, runs: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each function, run in turn so that a noisy neighbour on a shared
    machine slows every contender alike."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(warmup + runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            if round_ >= warmup:
                samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    line = lambda cells: "  ".join(str(c).rjust(w) for c, w in zip(cells, widths, strict=False))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def machine() -> dict[str, object]:
    """What the figures were taken on: they mean little without it."""
    from tests.support.pg_server import PostgresUnavailable, _bin_dir

    try:
        postgres = subprocess.run([str(_bin_dir() / "postgres"), "--version"], capture_output=True,
                                  text=True, check=True).stdout.strip()
    except (PostgresUnavailable, OSError, subprocess.CalledProcessError):
        postgres = "not available"
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory": _memory(),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres,
        "sqlalchemy": sqlalchemy.__version__,
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory() -> str:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(["free", "-h"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Mem:"):
                return f"{line.split()[1]} total"
    return "unknown"
