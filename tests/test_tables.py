"""The overview's blast table: one row per blast, as a marketer reads it."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from core.config import SANDBOX_DEVICE, Settings
from core.funnel import BlastFunnel, Funnel
from dashboard.tables import blast_table, blast_table_columns

KL = "Asia/Kuala_Lumpur"
PRACTICE = Settings(_env_file=None, wsapme_token=None)
LIVE = Settings(_env_file=None, wsapme_token="t0ken-for-the-test", wsapme_device="5850")


def _blast(blast_id: int, at: dt.datetime, funnel: Funnel, **kw: object) -> BlastFunnel:
    fields = {"blast_tag": "Promo", "follow_up_stage": "Initial", "state": "completed", "name": "Raya"}
    fields.update(kw)
    return BlastFunnel(blast_id=blast_id, blast_date=at, funnel=funnel, **fields)  # type: ignore[arg-type]


def test_each_blast_is_a_row_with_its_local_date_and_rates_of_sent() -> None:
    late_evening_utc = dt.datetime(2026, 3, 1, 20, 30, tzinfo=dt.UTC)  # 04:30 the next day in KL
    rows = [
        _blast(7, late_evening_utc, Funnel(total=12, waiting=2, sent=8, received=6, read=4, replied=2,
                                           closed=1, failed=1, unknown=1)),
        _blast(3, dt.datetime(2026, 2, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))), Funnel(),
               blast_tag=None, follow_up_stage=None, name=None, state="draft"),
    ]
    table = blast_table(rows, timezone=KL, settings=PRACTICE)

    first, second = table.to_dict("records")
    assert list(first)[:8] == ["Open", "Name", "State", "Sent", "Received %", "Read %", "Replied %",
                               "Closed %"], "what shows on a laptop without scrolling"
    assert first == {
        "Blast": 7, "Open": "/blast?blast=7", "Date": pd.Timestamp("2026-03-02 04:30"), "Name": "Raya",
        "Tag": "Promo", "Follow-up stage": "Initial", "State": "Finished", "Recipients": 12, "Sent": 8,
        "Received %": 75.0, "Read %": 50.0, "Replied %": 25.0, "Closed %": 12.5, "Failed": 1,
        "Unknown": 1,
    }
    assert second["Date"] == pd.Timestamp("2026-02-01 01:00")  # already in KL time
    assert (second["Name"], second["Tag"], second["Follow-up stage"]) == ("", "", "")
    assert second["State"] == "Draft"
    assert all(pd.isna(second[c]) for c in ("Received %", "Read %", "Replied %", "Closed %"))  # none sent


def test_rates_are_rounded_to_one_decimal() -> None:
    table = blast_table([_blast(1, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), Funnel(total=3, sent=3, read=1))],
                        timezone=KL, settings=PRACTICE)
    assert table.loc[0, "Read %"] == 33.3


def test_no_blasts_give_an_empty_table_with_every_column() -> None:
    table = blast_table([], timezone=KL, settings=PRACTICE)
    assert table.empty
    assert list(table.columns)[:3] == ["Open", "Name", "State"] and "Blast" in table.columns


def test_every_column_has_a_set_width() -> None:
    """An unsized column takes the room it likes and pushes the state and rates off a laptop screen."""
    config = blast_table_columns()
    assert list(config) and set(config) == set(blast_table([], timezone=KL, settings=PRACTICE).columns)
    assert all(isinstance(column["width"], int) for column in config.values())


def test_an_unfinished_blast_the_gateway_in_use_does_not_send_says_so() -> None:
    """A practice blast left sending once a token is set goes nowhere, and a WhatsApp blast
    goes nowhere in practice mode: "Sending" would promise messages that never leave."""
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = [
        _blast(1, at, Funnel(total=5, waiting=5), state="sending", device=SANDBOX_DEVICE),
        _blast(2, at, Funnel(total=5, waiting=5), state="paused", device="5850"),
        _blast(3, at, Funnel(total=5, sent=5), state="completed", device=SANDBOX_DEVICE),
        _blast(4, at, Funnel(total=5, waiting=5), state="draft", device=None),
    ]
    live = blast_table(rows, timezone=KL, settings=LIVE)["State"].tolist()
    practice = blast_table(rows, timezone=KL, settings=PRACTICE)["State"].tolist()
    assert live == ["Practice only", "Paused", "Finished", "Draft"]
    assert practice == ["Sending", "Waits for WhatsApp", "Finished", "Draft"]


# What the table shows on a 1366 px laptop with the sidebar open (as tests/test_pages.py measures
# it, less its border), less the 6 px of Streamlit's scroll bar.
LAPTOP_TABLE_PX = 904 - 6
# The longest demo blast name, "Year-End Clearance — Follow-up 2", in the table's 14 px Source Sans
# (measured in Chromium), and the table's 8 px either side of a cell's words.
LONG_NAME_PX = 198 + 2 * 8


def test_a_laptop_shows_whole_names_with_their_tag_and_stage() -> None:
    """The names were cut at 160 px, and the stage ran past the table's right edge."""
    config = blast_table_columns()
    columns = list(blast_table([], timezone=KL, settings=PRACTICE).columns)
    shown = columns[: columns.index("Follow-up stage") + 1]
    assert {"Name", "State", "Sent", "Received %", "Read %", "Replied %", "Closed %", "Tag"} <= set(shown)
    assert sum(config[column]["width"] for column in shown) <= LAPTOP_TABLE_PX
    assert config["Name"]["width"] >= LONG_NAME_PX


def test_rates_are_headed_by_their_stage_and_say_they_are_shares_of_sent() -> None:
    config = blast_table_columns()
    for column in ("Received %", "Read %", "Replied %", "Closed %"):
        stage = column.removesuffix(" %")
        assert config[column]["label"] == stage
        assert "share of the messages sent" in config[column]["help"]
