"""The command line: every command answers --help, and send / seed-demo work on a real database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.cli import COMMANDS
from core.config import PROJECT_ROOT
from core.db import make_engine, transaction
from core.funnel import funnel
from core.models import Blast, BlastRecipient, OptOut, RecipientReply, StatusHistory


def cli(*args: str, database: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "", **({"DATABASE_URL": f"sqlite:///{database}"} if database else {})}
    return subprocess.run(
        [sys.executable, "-m", "core", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
        env=env,
    )


def test_help_lists_every_command() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for name in COMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_explains_itself(name: str) -> None:
    result = cli(name, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: python -m core" in result.stdout


def test_seed_demo_fills_an_empty_database_once(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    first = cli("seed-demo", "--weeks", "3", database=db)
    assert first.returncode == 0, first.stderr
    engine = make_engine(f"sqlite:///{db}")
    with transaction(engine) as s:
        totals = funnel(s)
        blasts = s.scalar(select(func.count()).select_from(Blast))
        follow_ups = s.scalar(
            select(func.count()).select_from(Blast).where(Blast.parent_blast_id.is_not(None))
        )
        history = s.scalar(select(func.count()).select_from(StatusHistory))
        tags = set(s.scalars(select(Blast.blast_tag).distinct()))
        with_reply = s.scalar(select(func.count()).where(BlastRecipient.reply_text.is_not(None)))
        first_replies = s.scalar(
            select(func.count()).select_from(RecipientReply).join(BlastRecipient)
            .where(RecipientReply.text == BlastRecipient.reply_text)
        )
        replies = s.scalar(select(func.count()).select_from(RecipientReply))
        opted_out = s.scalar(select(func.count()).select_from(OptOut))
        stop_replies = s.scalar(
            select(func.count(BlastRecipient.phone_number.distinct())).join(RecipientReply)
            .where(RecipientReply.text.in_(["STOP", "Stop", "BERHENTI", "unsubscribe"]))
        )
    assert blasts >= 6 and follow_ups >= 1 and len(tags) >= 3
    assert (
        totals.sent > 1000
        and 0 < totals.closed < totals.replied < totals.read < totals.received < totals.sent
    )
    assert history >= totals.sent, "every status change has its history row"
    assert 0 < with_reply <= first_replies <= replies, "each reply kept, the first on the recipient too"
    assert 0 < stop_replies == opted_out, "a STOP reply puts the number on the opt-out list, as live"
    assert f"{totals.total:,}" in first.stdout
    again = cli("seed-demo", database=db)
    assert again.returncode == 2 and "--force" in again.stderr and "Traceback" not in again.stderr


def test_send_queues_a_draft_now_or_later(tmp_path: Path) -> None:
    db = tmp_path / "send.db"
    csv = tmp_path / "c.csv"
    csv.write_text("name,phone\nAisyah,0123456789\nRavi,0198765432\n")
    assert cli("import-csv", str(csv), "--tag", "T", "--message", "Hi {name}", database=db).returncode == 0
    assert cli("import-csv", str(csv), "--tag", "T", "--message", "Hi {name}", database=db).returncode == 0
    now = cli("send", "1", database=db)
    assert now.returncode == 0 and "2 recipients queued" in now.stdout
    later = cli("send", "2", "--at", "2099-01-02T09:30", database=db)
    assert later.returncode == 0 and "scheduled for 02 Jan 2099 09:30" in later.stdout
    again = cli("send", "1", database=db)
    assert again.returncode == 2 and "it is sending" in again.stderr
    bad = cli("send", "2", "--at", "next tuesday", database=db)
    assert bad.returncode == 2 and "not a date" in bad.stderr
    with transaction(make_engine(f"sqlite:///{db}")) as s:
        texts = set(s.scalars(select(BlastRecipient.message_text).where(BlastRecipient.blast_id == 1)))
    assert texts == {"Hi Aisyah", "Hi Ravi"}


def migrate_with(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m core migrate` with only these settings in its environment."""
    return subprocess.run([sys.executable, "-m", "core", "migrate"], capture_output=True, text=True,
                          timeout=60, cwd=PROJECT_ROOT, env={"PATH": "", **env})


def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    result = migrate_with({"DATABASE_URL": "postgresql://u:pw-Zq81-secret@127.0.0.1:1/db"})
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot use the database") and "Traceback" not in result.stderr
    assert "pw-Zq81-secret" not in result.stderr + result.stdout


def test_a_setting_that_cannot_be_used_is_named_in_one_line_without_its_value(tmp_path: Path) -> None:
    result = migrate_with({"DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}",
                           "WEBHOOK_MAX_BYTES": "lots-Zq81-secret", "SEND_LEASE_SECONDS": "soon"})
    assert result.returncode == 2
    assert result.stderr.startswith("error: a setting cannot be used") and "Traceback" not in result.stderr
    assert "WEBHOOK_MAX_BYTES" in result.stderr and "SEND_LEASE_SECONDS" in result.stderr
    assert "Zq81" not in result.stderr + result.stdout
