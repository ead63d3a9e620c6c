"""The command line: every command answers --help, and send / seed-demo work on a real database."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from core.cli import COMMANDS, driver_says, main
from core.config import PROJECT_ROOT, get_settings
from core.db import engine_for, make_engine, transaction
from core.funnel import funnel
from core.models import Blast, BlastRecipient, OptOut, RecipientReply, StatusHistory


def cli(*args: str, database: Path | None = None, **settings: str) -> subprocess.CompletedProcess[str]:
    """`python -m core ARGS` with only these settings (and the database) in its environment."""
    env = {"PATH": "", **({"DATABASE_URL": f"sqlite:///{database}"} if database else {}), **settings}
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
    first = cli("seed-demo", "--weeks", "6", database=db)
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
        # One sale a person a campaign, as the dashboard records them (`closed_under_its_tag`).
        sold_twice = s.execute(
            select(Blast.blast_tag, BlastRecipient.phone_number).join(Blast)
            .where(BlastRecipient.status == "CLOSED")
            .group_by(Blast.blast_tag, BlastRecipient.phone_number).having(func.count() > 1)
        ).all()
    assert not sold_twice
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
    sooner = cli("send", "2", database=db)  # the scheduled one, now: said, not silently
    assert sooner.returncode == 0 and "2 recipients queued" in sooner.stdout
    assert "was scheduled for 02 Jan 2099 09:30; it goes now instead" in sooner.stdout
    with transaction(make_engine(f"sqlite:///{db}")) as s:
        texts = set(s.scalars(select(BlastRecipient.message_text).where(BlastRecipient.blast_id == 1)))
    assert texts == {"Hi Aisyah", "Hi Ravi"}


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The command line run in this process (`main([...])`: a subprocess costs seconds), with
    settings read afresh from the environment the test sets."""
    monkeypatch.setenv("SEND_QUIET_HOURS", "off")
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()
    engine_for.cache_clear()


def test_send_message_writes_the_message_of_a_draft_imported_without_one(
    tmp_path: Path, sqlite_template: Path, in_process: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = Path(shutil.copy(sqlite_template, tmp_path / "send.db"))  # migrated already: seconds saved
    in_process.setenv("DATABASE_URL", f"sqlite:///{db}")
    csv = tmp_path / "c.csv"
    csv.write_text("name,phone,city\nAisyah,0123456789,Ipoh\nRavi,0198765432,Klang\n")
    assert main(["import-csv", str(csv), "--tag", "T"]) == 0
    capsys.readouterr()
    assert main(["send", "1"]) == 2
    assert "has no message yet: give it with --message" in capsys.readouterr().err
    assert main(["send", "1", "--message", "Hi {nama}"]) == 2
    assert "{nama} is not a column in the file. Did you mean {name}?" in capsys.readouterr().err
    assert main(["send", "1", "--message", "Hi {name} from {city}", "--device", "7777"]) == 2
    assert "practice mode does not send it" in capsys.readouterr().err, "it would go out with a token"
    assert main(["send", "1", "--message", "Hi {name} from {city}"]) == 0
    assert "2 recipients queued" in capsys.readouterr().out
    assert main(["send", "1", "--message", "Changed"]) == 2
    assert "is no longer a draft" in capsys.readouterr().err
    with transaction(make_engine(f"sqlite:///{db}")) as s:
        assert s.get(Blast, 1).message_template == "Hi {name} from {city}"
        texts = set(s.scalars(select(BlastRecipient.message_text).where(BlastRecipient.blast_id == 1)))
    assert texts == {"Hi Aisyah from Ipoh", "Hi Ravi from Klang"}


def test_a_database_that_cannot_be_used_is_named_in_the_drivers_words_without_the_password(
    tmp_path: Path, in_process: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    in_process.setenv("DATABASE_URL", f"postgresql://u:pw-Zq81-secret@127.0.0.1:{closed}/db")
    assert main(["migrate"]) == 2
    said = capsys.readouterr().err
    assert said.startswith("error: cannot use the database: check DATABASE_URL")
    assert f'connection to server at "127.0.0.1", port {closed} failed: Connection refused' in said
    (tmp_path / "a-file").write_text("")  # SQLite's folder cannot be made where a file is
    in_process.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'a-file' / 'blasts.db'}")
    get_settings.cache_clear()
    assert main(["migrate"]) == 2
    said += capsys.readouterr().err
    assert f"error: the folder for the SQLite database, {tmp_path / 'a-file'}, cannot be made" in said
    assert "Zq81" not in said and "Traceback" not in said


def test_the_drivers_words_are_left_out_when_they_hold_the_password(in_process: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    said = 'connection to server at "db.example.com", port 5432 failed: FATAL:  role "{}" does not exist'
    in_process.setenv("DATABASE_URL", "postgresql://pw-Zq81:pw-Zq81@db.example.com/db")
    assert driver_says(OperationalError("connect", {}, Exception(said.format("pw-Zq81")))) is None
    in_process.setenv("DATABASE_URL", "postgresql://app@db.example.com/db?password=pw-Zq81")
    get_settings.cache_clear()
    assert driver_says(OperationalError("connect", {}, Exception(said.format("pw-Zq81")))) is None
    assert driver_says(OperationalError("connect", {}, Exception(said.format("app") + "\nmore"))) == (
        said.format("app"))


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


# --- send: when sending really starts, past times, gaps ------------------------------------

KL = ZoneInfo("Asia/Kuala_Lumpur")  # the default APP_TIMEZONE


def _two_drafts(tmp_path: Path, message: str = "Hi {name}", rows: str = "") -> Path:
    db = tmp_path / "send.db"
    csv = tmp_path / "c.csv"
    csv.write_text(rows or "name,phone\nAisyah,0123456789\nRavi,0198765432\n")
    for _ in range(2):
        made = cli("import-csv", str(csv), "--tag", "T", "--message", message, database=db)
        assert made.returncode == 0, made.stderr
    return db


def test_send_inside_quiet_hours_says_when_sending_really_starts(tmp_path: Path) -> None:
    db = _two_drafts(tmp_path)
    local = dt.datetime.now(KL).replace(second=0, microsecond=0)
    start, end = local - dt.timedelta(hours=1), local + dt.timedelta(hours=2)
    quiet = {"SEND_QUIET_HOURS": f"{start:%H:%M}-{end:%H:%M}"}
    now = cli("send", "1", database=db, **quiet)
    assert now.returncode == 0, now.stderr
    assert "a worker sends them now" not in now.stdout
    assert f"inside quiet hours ({start:%H:%M}–{end:%H:%M}), so sending starts at {end:%H:%M}" in now.stdout
    later = cli("send", "2", "--at", "2099-01-02T22:30", database=db, SEND_QUIET_HOURS="21:00-09:00")
    assert later.returncode == 0, later.stderr
    assert ("scheduled for 02 Jan 2099 22:30; 22:30 is inside quiet hours (21:00–09:00), "
            "so sending starts at 09:00 on 3 Jan 2099") in later.stdout


def test_send_without_pacing_keeps_no_quiet_hours(tmp_path: Path) -> None:
    db = _two_drafts(tmp_path)
    local = dt.datetime.now(KL)
    window = f"{local - dt.timedelta(hours=1):%H:%M}-{local + dt.timedelta(hours=2):%H:%M}"
    _a_worker_checked_in(db)
    now = cli("send", "1", database=db, SEND_QUIET_HOURS=window, SEND_PACING="off")
    assert now.returncode == 0 and "2 recipients queued; a worker sends them now" in now.stdout
    assert "No send worker is running" not in now.stdout


def test_send_with_no_worker_running_says_nothing_goes_until_one_starts(tmp_path: Path) -> None:
    db = _two_drafts(tmp_path)
    now = cli("send", "1", database=db, SEND_QUIET_HOURS="off")
    assert now.returncode == 0, now.stderr
    assert now.stdout.splitlines() == [
        "blast 1: 2 recipients queued",
        "No send worker is running now, so nothing goes until one starts: the dashboard with "
        "RUN_WORKER=true, or `python -m core worker` against the same database."]


def _a_worker_checked_in(db: Path) -> None:
    """A send worker's heartbeat, as one running against this database writes it."""
    from core import app_state
    from core.sending.worker import HEARTBEAT_PREFIX

    with transaction(make_engine(f"sqlite:///{db}")) as s:
        app_state.put(s, key=HEARTBEAT_PREFIX + "test-worker", value={"pid": 1})


def test_send_refuses_a_time_that_has_passed_but_takes_one_just_now(tmp_path: Path) -> None:
    db = _two_drafts(tmp_path)
    typo = cli("send", "1", "--at", "2025-01-02T09:30", database=db)
    assert typo.returncode == 2 and "Traceback" not in typo.stderr
    assert typo.stderr.startswith("error: --at 02 Jan 2025 09:30 has already passed")
    just_now = dt.datetime.now(KL) - dt.timedelta(minutes=2)
    ok = cli("send", "1", "--at", f"{just_now:%Y-%m-%dT%H:%M}", database=db, SEND_QUIET_HOURS="off")
    assert ok.returncode == 0 and "2 recipients queued" in ok.stdout, ok.stderr
    with transaction(make_engine(f"sqlite:///{db}")) as s:
        assert [b.state for b in s.scalars(select(Blast).order_by(Blast.id))] == ["sending", "draft"]


def test_send_with_an_empty_placeholder_needs_allow_blanks(tmp_path: Path) -> None:
    db = _two_drafts(tmp_path, "Hi {name} from {city}",
                     "name,phone,city\nAisyah,0123456789,Ipoh\nRavi,0198765432,\n")
    refused = cli("send", "1", database=db)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "would get a message with a gap" in refused.stderr and "--allow-blanks" in refused.stderr
    sent = cli("send", "1", "--allow-blanks", database=db)
    assert sent.returncode == 0 and "2 recipients queued" in sent.stdout, sent.stderr
    with transaction(make_engine(f"sqlite:///{db}")) as s:
        texts = set(s.scalars(select(BlastRecipient.message_text).where(BlastRecipient.blast_id == 1)))
    assert texts == {"Hi Aisyah from Ipoh", "Hi Ravi from "}


# --- seed-demo only in practice mode -------------------------------------------------------


def test_seed_demo_refuses_a_live_database(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    result = cli("seed-demo", database=db, WSAPME_TOKEN="live-token-Zq81", WSAPME_DEVICE="5850")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: Demo data is for practice mode only")
    assert "Zq81" not in result.stdout + result.stderr
    if db.exists():
        with transaction(make_engine(f"sqlite:///{db}")) as s:
            assert not s.scalar(select(func.count()).select_from(Blast))


# --- mistakes are one plain line -----------------------------------------------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


MISTAKES = {
    "simulator --port 99999": (["simulator", "--port", "99999"], "is not a port"),
    "simulator --host nosuchhost.invalid": (["simulator", "--host", "nosuchhost.invalid", "--port", "0"],
                                            "not an address of this machine"),
    "simulator --delivered 5": (["simulator", "--delivered", "5"], "--delivered must be between 0 and 1"),
    "migrate --revision nonsense": (["migrate", "--revision", "nonsense"], "not a revision of this schema"),
    "migrate --revision base": (["migrate", "--revision", "base"], "only moves the schema forward"),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_mistake_is_one_plain_line(mistake: str, tmp_path: Path) -> None:
    args, words = MISTAKES[mistake]
    db = tmp_path / "m.db"
    assert cli("migrate", database=db).returncode == 0
    result = cli(*args, database=db)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert words in result.stderr
    with transaction(make_engine(f"sqlite:///{db}")) as s:
        assert s.scalar(select(func.count()).select_from(Blast)) == 0, "the schema is still there"


def test_a_taken_port_is_one_plain_line(taken_port: int) -> None:
    result = cli("simulator", "--port", str(taken_port))
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert "the port is taken" in result.stderr


def test_an_unsupported_database_is_one_line_without_the_password() -> None:
    result = migrate_with({"DATABASE_URL": "mysql://u:pw-Zq81-secret@127.0.0.1/db"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: DATABASE_URL is a mysql address")
    assert "pw-Zq81-secret" not in result.stderr + result.stdout


def test_the_simulator_help_says_a_token_is_needed() -> None:
    result = cli("simulator", "--help")
    words = " ".join(result.stdout.split())
    assert "WSAPME_TOKEN and WSAPME_DEVICE to any values" in words and "--webhook-url" in words
