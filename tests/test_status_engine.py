"""The status engine's rules: monotonic, out of order, duplicates, stage stamps, concurrency."""

from __future__ import annotations

import datetime as dt
import itertools
import threading

import pytest
from sqlalchemy import Engine, func, select

from core.db import transaction
from core.models import BlastRecipient, StatusHistory
from core.recipients import close_sale, undo_sales
from core.status_batch import StatusEvent, apply_statuses
from core.status_engine import JUDGED_COLUMNS, apply_status, is_allowed
from core.statuses import RANK, STAGE_TIMESTAMP_COLUMN, Status, status_in_words
from tests.support.factories import at, make_blast, make_recipient


def _new_recipient(engine: Engine, status: Status = Status.QUEUED) -> int:
    with transaction(engine) as s:
        return make_recipient(s, make_blast(s), status=status.value).id


def _apply(engine: Engine, rid: int, status: Status, when=None, **kw):
    with transaction(engine) as s:
        return apply_status(s, recipient_id=rid, status=status, source=kw.pop("source", "webhook"),
                            at=when, **kw)


def _recipient(engine: Engine, rid: int) -> BlastRecipient:
    with transaction(engine) as s:
        return s.get(BlastRecipient, rid)


def _history(engine: Engine, rid: int) -> list[tuple[str | None, str, str | None]]:
    with transaction(engine) as s:
        rows = s.scalars(select(StatusHistory).where(StatusHistory.recipient_id == rid)
                         .order_by(StatusHistory.id)).all()
        return [(h.old_status, h.new_status, h.source) for h in rows]


@pytest.mark.parametrize(
    ("old", "new", "manual", "allowed"),
    [
        (Status.QUEUED, Status.SENDING, False, True),
        (Status.SENDING, Status.PENDING, False, True),
        (Status.PENDING, Status.DELIVERY_ACK, False, True),
        (Status.READ_ACK, Status.DELIVERY_ACK, False, False),
        (Status.REPLIED, Status.READ_ACK, False, False),
        (Status.CLOSED, Status.REPLIED, False, False),
        (Status.CLOSED, Status.REPLIED, True, True),
        (Status.SENDING, Status.UNKNOWN, False, True),
        (Status.UNKNOWN, Status.QUEUED, False, False),
        (Status.UNKNOWN, Status.QUEUED, True, True),
        (Status.FAILED, Status.DELIVERY_ACK, False, True),
        (Status.PENDING, Status.FAILED, False, True),  # an error reported after the gateway took it
        (Status.SERVER_ACK, Status.FAILED, False, True),
        (Status.DELIVERY_ACK, Status.FAILED, False, False),  # it reached the phone: an error is late
        (Status.READ_ACK, Status.FAILED, False, False),
        (Status.READ_ACK, Status.READ_ACK, False, False),
    ],
)
def test_transition_rules(old: Status, new: Status, manual: bool, allowed: bool) -> None:
    assert is_allowed(old, new, manual=manual) is allowed


def test_status_only_moves_up_and_history_records_each_real_change(engine: Engine) -> None:
    rid = _new_recipient(engine, Status.PENDING)
    assert _apply(engine, rid, Status.READ_ACK, at(10)).changed
    late_delivery = _apply(engine, rid, Status.DELIVERY_ACK, at(11))
    assert not late_delivery.changed
    duplicate_read = _apply(engine, rid, Status.READ_ACK, at(12))
    assert not duplicate_read.changed
    r = _recipient(engine, rid)
    assert r.status == "READ_ACK"
    assert _history(engine, rid) == [("PENDING", "READ_ACK", "webhook")]


def test_skipped_stages_take_the_later_events_time(engine: Engine) -> None:
    rid = _new_recipient(engine, Status.SENDING)
    _apply(engine, rid, Status.PENDING, at(9), source="send")
    _apply(engine, rid, Status.REPLIED, at(10, 30))  # read receipts off: no DELIVERY/READ
    r = _recipient(engine, rid)
    assert r.sent_at == at(9)
    assert r.delivered_at == at(10, 30)
    assert r.read_timestamp == at(10, 30)
    assert r.replied_at == at(10, 30)
    assert r.message_c2s_timestamp == int(at(10, 30).timestamp())
    assert r.closed_at is None


def test_first_time_a_stage_is_reached_keeps_its_timestamp(engine: Engine) -> None:
    rid = _new_recipient(engine, Status.PENDING)
    _apply(engine, rid, Status.DELIVERY_ACK, at(10))
    _apply(engine, rid, Status.READ_ACK, at(11))
    _apply(engine, rid, Status.DELIVERY_ACK, at(12))  # duplicate, later
    r = _recipient(engine, rid)
    assert (r.delivered_at, r.read_timestamp) == (at(10), at(11))


def test_event_payload_and_updates_are_stored(engine: Engine) -> None:
    rid = _new_recipient(engine, Status.SENDING)
    raw = {"key": {"id": "3EB0ABC"}, "status": "PENDING"}
    _apply(engine, rid, Status.PENDING, at(9), source="send", event=raw,
           updates={"message_id": "3EB0ABC", "wsapme_message_data": raw})
    r = _recipient(engine, rid)
    assert r.message_id == "3EB0ABC"
    assert r.wsapme_message_data == raw
    with transaction(engine) as s:
        assert s.scalars(select(StatusHistory.event)).one() == raw


def test_a_non_change_only_fills_empty_columns(engine: Engine) -> None:
    rid = _new_recipient(engine, Status.READ_ACK)
    _apply(engine, rid, Status.DELIVERY_ACK, at(9),
           updates={"message_c2s_timestamp": 1_700_000_000, "error": None})
    assert _recipient(engine, rid).message_c2s_timestamp == 1_700_000_000
    _apply(engine, rid, Status.DELIVERY_ACK, at(9), updates={"message_c2s_timestamp": 5})
    assert _recipient(engine, rid).message_c2s_timestamp == 1_700_000_000


def test_manual_correction_downwards_clears_stages_above(engine: Engine) -> None:
    rid = _new_recipient(engine, Status.PENDING)
    _apply(engine, rid, Status.CLOSED, at(10), source="manual")
    change = _apply(engine, rid, Status.REPLIED, at(11), source="manual", manual=True)
    assert change.changed
    r = _recipient(engine, rid)
    assert r.status == "REPLIED" and r.closed_at is None and r.replied_at == at(10)


def test_unknown_source_is_refused(engine: Engine) -> None:
    rid = _new_recipient(engine)
    with pytest.raises(ValueError):
        _apply(engine, rid, Status.SENDING, source="carrier-pigeon")


def test_concurrent_events_never_lower_or_lose_a_status(engine: Engine) -> None:
    """Many threads deliver acks for one set of recipients at once, in every order."""
    rids = [_new_recipient(engine, Status.PENDING) for _ in range(5)]
    events = [Status.SERVER_ACK, Status.DELIVERY_ACK, Status.READ_ACK, Status.REPLIED] * 3
    errors: list[BaseException] = []

    def worker(order: list[Status]) -> None:
        try:
            for status in order:
                for rid in rids:
                    _apply(engine, rid, status)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    orders = [events, list(reversed(events)), events[1::2] + events[::2], events[::-1][1::2]]
    threads = [threading.Thread(target=worker, args=(o,)) for o in orders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with transaction(engine) as s:
        statuses = s.scalars(select(BlastRecipient.status).where(BlastRecipient.id.in_(rids))).all()
        assert set(statuses) == {"REPLIED"}
        for rid in rids:
            history = s.scalars(select(StatusHistory.new_status)
                                .where(StatusHistory.recipient_id == rid)
                                .order_by(StatusHistory.id)).all()
            ranks = [["SERVER_ACK", "DELIVERY_ACK", "READ_ACK", "REPLIED"].index(h) for h in history]
            assert ranks == sorted(set(ranks)), "history went down or repeated"
            assert history[-1] == "REPLIED"
        total = s.scalar(select(func.count()).select_from(StatusHistory))
        assert total <= 4 * len(rids)


def test_the_compare_and_set_path_follows_the_same_rules_as_judge(engine: Engine) -> None:
    """The send worker's fast path writes the stage rules in SQL, one conditional UPDATE per
    move; for every move it may take it must leave the row and history as the locked path,
    which runs `judge`, does: from no stamps, from the stamps the old status earned, and from
    every stamp already set (a row corrected by hand keeps those above its status)."""
    moves = [(old, new) for old, new in itertools.product(Status, Status) if is_allowed(old, new)]
    earlier = at(8)
    patterns = {
        "none": lambda old: {},
        "earned": lambda old: {c: earlier for stage, c in STAGE_TIMESTAMP_COLUMN.items()
                               if stage.min_rank <= RANK[old]},
        "all": lambda old: {c: earlier for c in STAGE_TIMESTAMP_COLUMN.values()},
    }
    mismatches = []
    for (old, new), (pattern, stamps) in itertools.product(moves, patterns.items()):
        with transaction(engine) as s:
            blast = make_blast(s)
            fields = dict(status=old.value, **stamps(old))
            if "delivered_at" in fields:
                fields["message_c2s_timestamp"] = int(earlier.timestamp())
            fast, locked = (make_recipient(s, blast, **fields).id for _ in range(2))
        changes = [
            _apply(engine, rid, new, at(10), source="send",
                   updates={"message_id": f"3EB0{rid}", "error": None}, **known)
            for rid, known in ((fast, {"known_old": old}), (locked, {}))
        ]
        rows = [_recipient(engine, rid) for rid in (fast, locked)]
        assert [r.message_id for r in rows] == [f"3EB0{fast}", f"3EB0{locked}"]
        columns = [{c: getattr(r, c) for c in (*JUDGED_COLUMNS, "error")} for r in rows]
        outcomes = [(c.changed, c.old_status, c.new_status) for c in changes]
        if outcomes[0] != outcomes[1] or columns[0] != columns[1] \
                or _history(engine, fast) != _history(engine, locked):
            mismatches.append((old.value, new.value, pattern, columns))
    assert len(moves) > 20
    assert not mismatches


@pytest.mark.parametrize("status", list(Status))
def test_every_status_has_words_a_marketer_reads(status: Status) -> None:
    words = status_in_words(status.value)
    assert words and words != status.value and "_" not in words


def test_a_status_this_version_does_not_know_has_no_words() -> None:
    assert status_in_words("ON_HOLD") is None


@pytest.mark.parametrize(("old", "new", "kept"), [
    (Status.UNKNOWN, Status.REPLIED, False),  # a reply proves the lost send went
    (Status.UNKNOWN, Status.DELIVERY_ACK, False),
    (Status.FAILED, Status.READ_ACK, False),
    (Status.UNKNOWN, Status.CLOSED, False),  # closed by hand
    (Status.SERVER_ACK, Status.READ_ACK, True),  # not a problem text the move settles
])
def test_a_send_that_proves_to_have_gone_loses_its_problem_text(
    engine: Engine, old: Status, new: Status, kept: bool
) -> None:
    with transaction(engine) as s:
        rid = make_recipient(s, make_blast(s), status=old.value, error="No answer from WSAPME.").id
    _apply(engine, rid, new, source="manual" if new is Status.CLOSED else "webhook")
    row = _recipient(engine, rid)
    assert row.status == new.value
    assert row.error == ("No answer from WSAPME." if kept else None)


@pytest.mark.parametrize("taken", [Status.PENDING, Status.SERVER_ACK])
@pytest.mark.parametrize("batched", [False, True], ids=["one", "batch"])
def test_an_error_after_the_gateway_took_a_message_fails_it_until_the_phone_says_otherwise(
    engine: Engine, taken: Status, batched: bool
) -> None:
    """WhatsApp could not deliver it: it leaves the funnel, keeping when it was sent. A late
    "on its way" or "one tick" (sent before the error) does not bring it back; a receipt from
    the person's phone does, and clears the problem."""

    def receive(status: Status, when: dt.datetime, error: str | None = None) -> None:
        written = {"error": error} if error else {}
        with transaction(engine) as s:
            if batched:
                apply_statuses(s, [StatusEvent(rid, status, when, "webhook", defaults=written)])
            else:
                apply_status(s, recipient_id=rid, status=status, source="webhook", at=when, updates=written)

    with transaction(engine) as s:
        rid = make_recipient(s, make_blast(s), status=taken.value, message_id="M1", sent_at=at(9)).id
    receive(Status.FAILED, at(10), error="WhatsApp reported an error")
    r = _recipient(engine, rid)
    assert (r.status, r.sent_at, r.error) == ("FAILED", at(9), "WhatsApp reported an error")
    for late in (Status.PENDING, Status.SERVER_ACK):
        receive(late, at(11))
        assert _recipient(engine, rid).status == "FAILED"
    receive(Status.DELIVERY_ACK, at(12))
    r = _recipient(engine, rid)
    assert (r.status, r.sent_at, r.delivered_at, r.error) == ("DELIVERY_ACK", at(9), at(12), None)
    receive(Status.FAILED, at(13))  # once received, an error changes nothing
    assert _recipient(engine, rid).status == "DELIVERY_ACK"
    assert _history(engine, rid) == [(taken.value, "FAILED", "webhook"),
                                     ("FAILED", "DELIVERY_ACK", "webhook")]


def test_a_caller_that_knows_the_status_cannot_lift_a_failed_message_past_the_rule(engine: Engine) -> None:
    """The compare-and-set short cut would write any move up it is handed: not from FAILED."""
    with transaction(engine) as s:
        rid = make_recipient(s, make_blast(s), status="FAILED", message_id="M1", sent_at=at(9)).id
    assert not _apply(engine, rid, Status.SERVER_ACK, at(10), known_old=Status.FAILED).changed
    assert _recipient(engine, rid).status == "FAILED"


def test_a_refused_send_is_still_lifted_by_a_late_one_tick(engine: Engine) -> None:
    """Only a message that failed after the gateway took it (it has a send time) is held: one
    the worker found refused has none, and the gateway's ack proves it went after all."""
    rid = _lost_send(engine, Status.FAILED)
    _apply(engine, rid, Status.SERVER_ACK, at(10))
    assert (_recipient(engine, rid).status, _recipient(engine, rid).sent_at) == ("SERVER_ACK", at(9))


def _lost_send(engine: Engine, status: Status = Status.UNKNOWN) -> int:
    """A send whose answer was lost at 09:00 (or that the gateway said failed): no send time."""
    rid = _new_recipient(engine, Status.SENDING)
    _apply(engine, rid, status, at(9), source="send")
    return rid


@pytest.mark.parametrize("lost", [Status.UNKNOWN, Status.FAILED])
@pytest.mark.parametrize("batched", [False, True], ids=["one", "batch"])
def test_a_lost_send_that_proves_to_have_gone_went_when_it_was_tried(
    engine: Engine, lost: Status, batched: bool
) -> None:
    """A reply the next day proves the message went, but at 09:00, when it was sent: not a
    day later, which would count it on the wrong day and make the time to reply nothing."""
    rid = _lost_send(engine, lost)
    replied = at(9) + dt.timedelta(days=1)
    with transaction(engine) as s:
        if batched:
            apply_statuses(s, [StatusEvent(rid, Status.REPLIED, replied, "webhook")])
        else:
            apply_status(s, recipient_id=rid, status=Status.REPLIED, source="webhook", at=replied)
    r = _recipient(engine, rid)
    assert r.sent_at == at(9)
    assert (r.delivered_at, r.read_timestamp, r.replied_at) == (replied, replied, replied)


def test_a_send_failed_and_proved_in_one_batch_went_when_it_failed(engine: Engine) -> None:
    rid = _new_recipient(engine, Status.SENDING)  # its receipts came before the send's answer
    with transaction(engine) as s:
        apply_statuses(s, [StatusEvent(rid, Status.FAILED, at(9), "webhook"),
                           StatusEvent(rid, Status.READ_ACK, at(11), "webhook")])
    assert (_recipient(engine, rid).sent_at, _recipient(engine, rid).read_timestamp) == (at(9), at(11))


def test_a_sale_on_a_lost_send_dates_the_send_by_its_try_and_undoing_it_clears_that(engine: Engine) -> None:
    rid = _lost_send(engine)
    with transaction(engine) as s:
        close_sale(s, recipient_id=rid, source="manual", at=at(15))
    r = _recipient(engine, rid)
    assert (r.status, r.sent_at, r.closed_at) == ("CLOSED", at(9), at(15))
    assert (r.delivered_at, r.read_timestamp, r.replied_at) == (None, None, None)  # none made up
    with transaction(engine) as s:
        assert undo_sales(s, recipient_ids=[rid]) == 1
    r = _recipient(engine, rid)
    assert (r.status, r.sent_at, r.closed_at) == ("UNKNOWN", None, None)


def test_a_lost_send_a_person_marked_failed_is_still_dated_by_its_try(engine: Engine) -> None:
    rid = _lost_send(engine)
    with transaction(engine) as s:
        apply_status(s, recipient_id=rid, status=Status.FAILED, source="manual", manual=True, at=at(15))
    _apply(engine, rid, Status.REPLIED, at(9) + dt.timedelta(days=1))
    assert _recipient(engine, rid).sent_at == at(9), "when it was tried, not when a person decided"


def test_a_lost_send_without_history_takes_the_proofs_time_as_before(engine: Engine) -> None:
    rid = _new_recipient(engine, Status.UNKNOWN)  # no history row says when it was tried
    _apply(engine, rid, Status.DELIVERY_ACK, at(10))
    assert _recipient(engine, rid).sent_at == at(10)
