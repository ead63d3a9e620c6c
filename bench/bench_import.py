"""Benchmark: our CSV import (parse, validate, store a draft blast) against plain pandas.read_csv.

Run: `python -m bench.bench_import [--rows 100000] [--runs 5]`. The file and the SQLite
databases go to bench/out/ (ignored by git).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from core import phones
from core.csv_import import create_draft_blast_from_import, import_report, parse_csv
from core.db import make_engine, migrate, transaction

OUT_DIR = Path(__file__).resolve().parent / "out"
FIRST_NAMES = ("Ahmad", "Siti", "Nur", "Muhammad", "Tan", "Lim", "Wong", "Raj", "Priya",
               "Aisyah", "Chong", "Kumar", "Farah", "Mei Ling", "Hafiz", "Devi")
LAST_NAMES = ("bin Abdullah", "binti Ismail", "Wei Ming", "Ah Kow", "a/l Muthu", "Hassan",
              "Kaur", "Yusof", "Chee Keong", "Ramasamy")
CITIES = ("Kuala Lumpur", "Petaling Jaya", "Shah Alam", "Johor Bahru", "Ipoh", "Penang",
          "Kota Kinabalu", "Kuching", "Melaka", "Seremban")
# How people type a mobile, with how often each form turns up (weights).
FORMS: tuple[tuple[Callable[[str], str], int], ...] = (
    (lambda d: f"0{d[:2]}-{d[2:5]} {d[5:]}", 30),
    (lambda d: f"0{d}", 20),
    (lambda d: f"+60 {d[:2]}-{d[2:5]} {d[5:]}", 12),
    (lambda d: f"60{d}", 10),
    (lambda d: f"+60{d}", 6),
    (lambda d: d, 6),  # Excel ate the leading zero
    (lambda d: f"(0{d[:2]}) {d[2:5]}-{d[5:]}", 4),
    (lambda d: f"0{d[:2]}.{d[2:5]}.{d[5:]}", 2),
    (lambda d: f"0060 {d[:2]} {d[2:5]} {d[5:]}", 2),
    (lambda d: f"60{d}.0", 3),  # stored as a float
    (lambda d: f"6.0{d}E+{len(d) + 1}", 3),  # scientific notation, all digits kept
    (lambda d: f"\u00a00{d[:2]}\u00a0{d[2:]}\u200b", 2),  # NBSP and zero-width space
)
BAD_CELLS = ("12345", "N/A", "", "-", "0123", "tiada", "03-2345 6789", "+65 9123 4567",
             "6.01235E+10", "012-345 6789 / 013-456 7890")


def mobile_digits(rng: random.Random) -> str:
    """A real-looking Malaysian mobile without the trunk 0 (1X-XXX XXXX, 11-XXXX XXXX),
    drawn until phonenumbers calls it a valid mobile: not every 01X range is in use."""
    while True:
        if rng.random() < 0.15:
            digits = f"11{rng.randint(10_000_000, 99_999_999)}"
        else:
            digits = f"1{rng.choice('2346789')}{rng.randint(1_000_000, 9_999_999)}"
        result = phones.normalise(digits)
        if result.ok and result.is_mobile:
            return digits


def write_csv(path: Path, rows: int, seed: int = 7) -> None:
    """A realistic contact list: ~3% repeats of earlier numbers, ~2% unusable cells."""
    rng = random.Random(seed)
    forms, weights = zip(*FORMS, strict=True)
    seen: list[str] = []
    records = []
    for i in range(rows):
        roll = rng.random()
        if roll < 0.03 and seen:
            phone = rng.choice(forms)(rng.choice(seen))
        elif roll < 0.05:
            phone = rng.choice(BAD_CELLS)
        else:
            digits = mobile_digits(rng)
            seen.append(digits)
            phone = rng.choices(forms, weights)[0](digits)
        records.append({
            "Nama": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
            "No. Telefon": phone,
            "Bandar": rng.choice(CITIES),
            "Emel": f"customer{i}@example.com",
            "Catatan": "VIP, repeat buyer" if rng.random() < 0.1 else "",
        })
    pd.DataFrame.from_records(records).to_csv(path, index=False, encoding="utf-8-sig")


def make_template_db(path: Path) -> Path:
    """A migrated, checkpointed SQLite file: each run copies it, so migration is not timed."""
    path.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()  # the last connection to close folds the WAL into the file
    return path


def time_pandas(path: Path) -> float:
    start = time.perf_counter()
    pd.read_csv(path)
    return time.perf_counter() - start


def time_pandas_as_text(path: Path) -> float:
    start = time.perf_counter()
    pd.read_csv(path, dtype=str, keep_default_na=False)
    return time.perf_counter() - start


def time_parse(path: Path) -> float:
    phones._normalise_full.cache_clear()
    start = time.perf_counter()
    parse_csv(path.read_bytes(), filename=path.name)
    return time.perf_counter() - start


def time_ours(path: Path, template_db: Path, run: int) -> tuple[float, dict[str, int]]:
    db = template_db.parent / f"run-{run}.db"
    shutil.copy(template_db, db)
    engine = make_engine(f"sqlite:///{db}")
    phones._normalise_full.cache_clear()  # every run starts cold, as a fresh upload would
    start = time.perf_counter()
    with transaction(engine) as session:
        report = import_report(session, path.read_bytes(), filename=path.name)
        create_draft_blast_from_import(session, report=report, tag="bench")
    elapsed = time.perf_counter() - start
    engine.dispose()
    db.unlink()
    return elapsed, report.counts


def run(*, rows: int = 100_000, runs: int = 5, out_dir: Path = OUT_DIR) -> dict:
    """Medians of pandas alone, our parse, and our parse + store, on one generated file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"contacts-{rows}.csv"
    write_csv(path, rows)
    template_db = make_template_db(out_dir / "template.db")
    plain = statistics.median(time_pandas(path) for _ in range(runs))
    as_text = statistics.median(time_pandas_as_text(path) for _ in range(runs))
    parse_only = statistics.median(time_parse(path) for _ in range(runs))
    ours_runs = [time_ours(path, template_db, run) for run in range(runs)]
    ours = statistics.median(t for t, _ in ours_runs)
    return {
        "rows": rows, "megabytes": path.stat().st_size / 1e6, "runs": runs,
        "seconds": {"pandas.read_csv (types inferred)": plain, "pandas.read_csv (dtype=str)": as_text,
                    "ours: parse + validate, no database": parse_only,
                    "ours: parse + validate + store (SQLite)": ours},
        "ratio_to_pandas": ours / plain, "outcomes": ours_runs[0][1],
    }


def report(result: dict) -> str:
    lines = [f"{result['rows']:,} rows, {result['megabytes']:.1f} MB, median of {result['runs']} runs"]
    lines += [f"  {label:<42}{seconds:7.3f} s" for label, seconds in result["seconds"].items()]
    lines.append(f"  {'ratio ours (with store) / plain pandas':<42}{result['ratio_to_pandas']:7.1f}x")
    lines.append("  outcomes: " + ", ".join(f"{k} {v:,}" for k, v in result["outcomes"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    print(report(run(rows=args.rows, runs=args.runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
