"""`python -m core simulator`: run the WSAPME gateway simulator until stopped."""

from __future__ import annotations

import argparse
import errno
import signal
import socket
import threading

from core.cli import SUMMARIES
from core.errors import BadInput
from core.simulator import ACK_SHAPES, Proportions, start_simulator
from core.simulator.webhooks import receiver_address

DEFAULTS = Proportions()


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulator",
        help=SUMMARIES["simulator"],
        description="A stand-in WSAPME gateway: answers sends and status look-ups like "
        "WSAPME and posts delivery, read and reply webhooks. To send through it, point "
        "WSAPME_API_URL and WSAPME_MASTER_URL at it and set WSAPME_TOKEN and WSAPME_DEVICE to any "
        "values (the device not `sandbox`): without "
        "a token the app uses its own built-in sandbox and ignores those two URLs. Give "
        "--webhook-url (the webhook address shown on the dashboard's Settings & health page) "
        "so receipts and replies reach the tracker. Controls and counts live under /_sim/.",
    )
    parser.add_argument("--port", type=int, default=8765, help="port (0: any free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--webhook-url", help="where to post delivery, read and reply events")
    parser.add_argument(
        "--mode",
        choices=("realistic", "fast"),
        default="realistic",
        help="realistic: delays of seconds to hours; fast: near-zero delays",
    )
    parser.add_argument("--seed", help="repeat the same ids and recipient behaviour")
    parser.add_argument("--token", help="accept only this token (default: any non-empty one)")
    parser.add_argument(
        "--webhook-shape",
        choices=("mixed", *ACK_SHAPES),
        default="mixed",
        help="one payload shape for every webhook (default: a realistic mix)",
    )
    parser.add_argument("--ack-numbering", choices=("baileys", "wwebjs"), default="baileys")
    for name, help_text in (
        ("delivered", "share of sent messages delivered"),
        ("read", "share of delivered messages read"),
        ("replied", "share of sent messages replied to"),
        ("errored", "share of undelivered messages WhatsApp reports an error for"),
    ):
        parser.add_argument(
            f"--{name}",
            type=float,
            default=getattr(DEFAULTS, name),
            help=f"{help_text} (default {getattr(DEFAULTS, name)})",
        )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise BadInput(f"--port {args.port} is not a port: use 1 to 65535, or 0 for any free one")
    try:
        proportions = Proportions(delivered=args.delivered, read=args.read, replied=args.replied,
                                  errored=args.errored)
    except ValueError as exc:  # "delivered must be between 0 and 1, not 5.0"
        raise BadInput(f"--{exc} (a share: 0.9 means 9 in 10)") from None
    try:
        sim = start_simulator(
            host=args.host,
            port=args.port,
            webhook_url=args.webhook_url,
            mode=args.mode,
            seed=args.seed,
            token=args.token,
            webhook_shape=args.webhook_shape,
            ack_numbering=args.ack_numbering,
            proportions=proportions,
        )
    except OSError as exc:
        raise BadInput(_cannot_listen(args.host, args.port, exc)) from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"WSAPME simulator ({args.mode}) listening on {sim.url}", flush=True)
    # The tracker's webhook address ends in its secret, and this line lands in terminals and logs.
    where = receiver_address(args.webhook_url) if args.webhook_url else "nowhere yet (POST /_sim/webhook)"
    print(f"webhooks go to {where}", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    print("simulator stopped", flush=True)
    return 0


def _cannot_listen(host: str, port: int, exc: OSError) -> str:
    where = f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {where}: {host} is not an address of this machine (try 127.0.0.1)"
    if exc.errno == errno.EADDRINUSE:
        return f"cannot listen on {where}: the port is taken; choose another with --port (0: any free one)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: {host} is not an address of this machine (try 127.0.0.1)"
    if exc.errno == errno.EACCES:
        return f"cannot listen on {where}: not allowed; ports below 1024 need an administrator"
    return f"cannot listen on {where}: {exc.strerror or type(exc).__name__}"
