"""Helpers for send tests: blasts of many recipients, and workers aimed at the simulator."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert, select

from core.config import Settings
from core.db import transaction
from core.models import Blast, BlastRecipient
from core.sending import blasts
from core.sending.worker import SendWorker
from tests.support.simulator import TEST_TOKEN, client_for

KL = ZoneInfo("Asia/Kuala_Lumpur")


def phone(i: int) -> str:
    return f"+6012{i:07d}"


def launched_blast(engine: Engine, n: int, *, device: str = "5850", **fields: Any) -> int:
    """A blast of `n` recipients, launched and sending."""
    with transaction(engine) as s:
        blast = Blast(blast_tag="Test", follow_up_stage="Initial", message_template="Hi {name}!",
                      name="test", **fields)
        s.add(blast)
        s.flush()
        s.execute(insert(BlastRecipient), [
            {"blast_id": blast.id, "phone_number": phone(i), "contact_name": f"P{i}"} for i in range(n)
        ])
        blast.total_recipients = n
        blast_id = blast.id
    with transaction(engine) as s:
        blasts.launch(s, blast_id=blast_id, device=device, timezone=KL)
    return blast_id


def settings_for(**overrides: Any) -> Settings:
    # A token: the worker talks to the simulator as to WSAPME, and sends the device's blasts.
    values: dict[str, Any] = {"send_pacing": "off", "send_max_attempts": 3, "send_lease_seconds": 30.0,
                              "send_quiet_hours": "off", "wsapme_device": "5850",
                              "wsapme_token": TEST_TOKEN}
    values.update(overrides)
    return Settings(_env_file=None, **values)


# Long enough for a loaded machine to answer an ordinary send; tests of a gateway that stops
# answering pass a shorter one with a delay well past it.
READ_TIMEOUT = 5.0


def worker_for(  # type: ignore[no-untyped-def]
    engine: Engine, sim, *, read_timeout: float = READ_TIMEOUT, **overrides: Any
) -> SendWorker:
    settings = settings_for(**overrides)
    return SendWorker(engine=engine, client=client_for(sim, read_timeout=read_timeout), settings=settings)


def statuses(engine: Engine, blast_id: int) -> dict[str, str]:
    with transaction(engine) as s:
        rows = s.execute(select(BlastRecipient.phone_number, BlastRecipient.status)
                         .where(BlastRecipient.blast_id == blast_id)).all()
    return dict(rows)


def blast_state(engine: Engine, blast_id: int) -> tuple[str, str | None]:
    with transaction(engine) as s:
        blast = s.get(Blast, blast_id)
        return blast.state, blast.state_reason


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AroundSends:
    """A worker's real client with something done just before, or just after, each send: a
    fault set up for one message, a STOP arriving while it is out, an answer read badly."""

    def __init__(self, real: Any, *, before: Any = None, after: Any = None) -> None:
        self._real, self._before, self._after = real, before, after

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def send_text(self, **kw: Any) -> Any:
        if self._before is not None:
            self._before(kw["to"])
        result = self._real.send_text(**kw)
        if self._after is not None:
            self._after(kw["to"])
        return result
