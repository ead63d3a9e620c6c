"""A real dashboard in a real headless Chromium: the server as the README starts it, and a
page that is only looked at once Streamlit has finished drawing it."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

from core.config import PROJECT_ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
# Streamlit is done when no skeleton stands in for an element, no element of the previous
# run is still shown (stale: the running widget can appear late on a busy machine), its
# "running" widget is gone, and every Plotly chart has drawn its SVG.
_DRAWN = """() => !document.querySelector('[data-testid="stSkeleton"]')
    && !document.querySelector('[data-stale="true"]')
    && !document.querySelector('[data-testid="stStatusWidget"]')
    && [...document.querySelectorAll('.js-plotly-plot')].every(p => p.querySelector('.main-svg'))"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    """A dashboard server started for a test: where it answers, and what it has said so far
    (its output is read as it comes, so a talkative server never blocks on a full pipe)."""

    url: str
    said: list[str] = field(default_factory=list)


@contextlib.contextmanager
def dashboard(data_dir: Path, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """`streamlit run streamlit_app.py` on the embedded default (SQLite in `data_dir`, the
    sandbox gateway); yields its base URL once it answers."""
    with serving(data_dir, env) as served:
        yield served.url


@contextlib.contextmanager
def serving(data_dir: Path, env: Mapping[str, str] | None = None) -> Iterator[Served]:
    """As `dashboard`, yielding the server's output too; all of it is there once the block ends
    (the server stopped)."""
    port = free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("WSAPME_", "DATABASE_URL"))},
        "DATA_DIR": str(data_dir),
        **(env or {}),
    }
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
               "--server.port", str(port), "--server.headless", "true"]
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    served = Served(f"http://127.0.0.1:{port}")
    reader = threading.Thread(target=lambda: served.said.extend(process.stdout or ()), daemon=True)
    reader.start()
    base = served.url
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=5).ok:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None:
                reader.join(5)
                raise AssertionError("".join(served.said))
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.3)
        yield served
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        reader.join(5)


def wait_until_drawn(page, timeout_ms: float = 60_000) -> None:  # type: ignore[no-untyped-def]
    """Until the page has finished running and every chart is drawn, then a moment for
    the charts' transitions."""
    page.wait_for_function(_DRAWN, timeout=timeout_ms)
    page.wait_for_timeout(500)
