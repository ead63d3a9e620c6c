"""The dashboard's Streamlit options hold wherever the server is started from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.config import PROJECT_ROOT

READ = ("import sys; sys.path.insert(0, sys.argv[1]); import streamlit_app; "
        "from streamlit import config; "
        "print(config.get_option('client.showErrorDetails'), config.get_option('server.maxUploadSize'))")


def _options(cwd: Path, **env: str) -> list[str]:
    environment = {**os.environ, "DATA_DIR": str(cwd / "data"), "RUN_WORKER": "false", **env}
    done = subprocess.run([sys.executable, "-c", READ, str(PROJECT_ROOT)], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.split()


def test_started_from_another_folder_the_projects_options_hold(tmp_path: Path) -> None:
    """No stack trace on a failing page, and the upload limit, also under
    `uvicorn streamlit_app:app` run from a service's own working folder."""
    assert _options(tmp_path) == ["none", "10"]


def test_an_option_set_elsewhere_still_wins(tmp_path: Path) -> None:
    """A machine's own Streamlit config (or a command-line flag) is not overwritten."""
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "config.toml").write_text("[server]\nmaxUploadSize = 5\n")
    assert _options(tmp_path, HOME=str(tmp_path)) == ["none", "5"]
