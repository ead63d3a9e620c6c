"""`python -m core worker`: a send worker process; run as many as you like on one PostgreSQL."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from core.cli import SUMMARIES
from core.config import get_settings
from core.db import engine_for, migrate
from core.gateway import make_client
from core.sending.worker import SendWorker

log = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    engine = engine_for(settings.sqlalchemy_url)
    migrate(engine)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    worker = SendWorker(engine=engine, client=make_client(settings), settings=settings)
    log.info("worker %s started%s", worker.name, " (until nothing is due)" if args.once else "")
    sent = worker.run(stop, once=args.once)
    print(f"worker {worker.name}: {sent} messages sent")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("worker", help=SUMMARIES["worker"])
    parser.add_argument("--once", action="store_true",
                        help="send everything due now, store the answers, then exit")
    parser.set_defaults(func=run)
