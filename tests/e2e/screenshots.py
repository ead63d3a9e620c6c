"""The README's screenshots, taken again: `python -m tests.e2e.screenshots`.

Six weeks of demo blasts (`python -m core seed-demo`) in a throwaway data folder, the
dashboard as the README starts it, and each page captured in headless Chromium once it has
finished drawing, into docs/screenshots/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from sqlalchemy import select

from core.config import PROJECT_ROOT
from core.db import make_engine, transaction
from core.models import Blast
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, dashboard, wait_until_drawn

OUT = PROJECT_ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1440, "height": 1500}


def _seed(data_dir: Path) -> None:
    env = {**os.environ, "DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "core", "seed-demo"], cwd=PROJECT_ROOT, env=env, check=True)


def _blast_to_show(data_dir: Path) -> int:
    """The newest finished first blast with follow-ups: its page shows the whole chain."""
    engine = make_engine(f"sqlite:///{data_dir / 'blasts.db'}")
    followed = select(Blast.parent_blast_id).where(Blast.parent_blast_id.is_not(None))
    with transaction(engine) as s:
        blast_id = s.scalar(
            select(Blast.id)
            .where(Blast.state == "completed", Blast.parent_blast_id.is_(None), Blast.id.in_(followed))
            .order_by(Blast.blast_date.desc()).limit(1)
        ) or s.scalar(select(Blast.id).order_by(Blast.blast_date.desc()).limit(1))
    engine.dispose()
    return int(blast_id)


def main() -> int:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        _seed(data_dir)
        blast_id = _blast_to_show(data_dir)
        with dashboard(data_dir, {"RUN_WORKER": "false"}) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
            page = browser.new_page(viewport=VIEWPORT)
            # Words each page shows last, once drawn: the start of them, so that a page's
            # wording may change without this waiting for words no longer there.
            shots = (("overview", "/", "Day by day"),
                     ("blast-detail", f"/blast?blast={blast_id}", "Where recipients are now"),
                     ("replies", "/replies", "Tick people to read everything they wrote"))
            for name, path, drawn in shots:
                page.goto(base + path)
                page.get_by_text(drawn).first.wait_for(timeout=60_000)
                wait_until_drawn(page)
                page.screenshot(path=str(OUT / f"{name}.png"))
                print(f"wrote {OUT / f'{name}.png'}")
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
