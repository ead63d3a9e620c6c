"""A webhook flood: thousands of posts from many concurrent senders, with duplicates, events
out of order, garbage and unknown ids mixed in. The final statuses equal what the gateway
emitted, and every post that got a 2xx is one inbox row.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy import Engine, select

from core.db import transaction
from core.models import BlastRecipient, RecipientReply
from core.sending.worker import SendWorker
from core.simulator import Emitted, Proportions
from tests.reliability.support import (
    WEBHOOK_SECRET,
    app_env,
    app_server,
    assert_every_event_kept,
    assert_history_moves_only_up,
    assert_statuses_match,
    fired_events,
    history,
    inbox,
    opt_out_phones,
    opted_out,
    recipients,
)
from tests.sending.support import launched_blast, settings_for
from tests.support.simulator import client_for, running_simulator

pytestmark = [pytest.mark.fault, pytest.mark.slow]

SIZE = 450
SENDERS = 12
DUPLICATE_SHARE = 0.3
TRIES = 30  # a sender retries a non-2xx answer this often, as the gateway does
SEED = 8


@dataclass(frozen=True)
class Post:
    body: bytes
    content_type: str
    kind: str  # event, duplicate, garbage, unknown-id, stranger


def replies_kept(engine: Engine) -> Counter[tuple[str, str]]:
    with transaction(engine) as s:
        return Counter(s.execute(
            select(BlastRecipient.phone_number, RecipientReply.text).join(RecipientReply)
        ).all())


def flood(emitted: Emitted, rng: random.Random) -> list[Post]:
    """Every emitted event, a share of them twice, and noise; shuffled, so reads come
    before deliveries and replies before their acks."""
    events = [Post(e.body.encode(), e.content_type or "application/json", "event")
              for e in emitted.events]
    again = rng.sample(events, int(len(events) * DUPLICATE_SHARE))
    twice = [Post(p.body, p.content_type, "duplicate") for p in again]
    noise = [Post(b'{"id": "3EB0', "application/json", "garbage") for _ in range(25)]
    noise += [Post(b"\x00\xff not a webhook", "text/plain", "garbage") for _ in range(25)]
    noise += [Post(json.dumps({"id": f"3EB0NOBODY{i:03d}", "status": 3}).encode(), "application/json",
                   "unknown-id") for i in range(30)]
    noise += [Post(json.dumps({"type": "text", "message": "hello?", "from": f"6019{i:07d}@c.us",
                               "timestamp": int(time.time())}).encode(), "application/json", "stranger")
              for i in range(30)]
    posts = events + twice + noise
    rng.shuffle(posts)
    return posts


def deliver(url: str, posts: list[Post]) -> list[tuple[int, int]]:
    """One sender's share: each post until it gets a 2xx. Returns (status, tries) per post."""
    results = []
    with requests.Session() as http:
        for post in posts:
            for attempt in range(1, TRIES + 1):
                try:
                    code = http.post(url, data=post.body, headers={"Content-Type": post.content_type},
                                     timeout=30).status_code
                except requests.ConnectionError:
                    code = 0
                if 200 <= code < 300:
                    break
                time.sleep(min(0.05 * attempt, 0.5))
            results.append((code, attempt))
    return results


def test_a_flood_of_concurrent_webhooks_ends_where_the_gateway_says(
    fault_db_url: str, fault_engine: Engine, tmp_path: Path, figures: dict[str, object],
) -> None:
    # Half the messages never delivered get WhatsApp's error after their tick.
    proportions = Proportions(replied=0.3, opt_out=0.3, reply_without_read=0.3, errored=0.5)
    # No webhook address yet: the gateway records every event with its body, posts none.
    with running_simulator(seed=SEED, proportions=proportions) as sim:
        sim.set_fault("duplicate_acks", times=SIZE // 4)
        sim.set_fault("out_of_order_acks", times=SIZE // 4)
        blast_id = launched_blast(fault_engine, SIZE)
        SendWorker(engine=fault_engine, client=client_for(sim), settings=settings_for()).run(once=True)
        fired_events(sim)
        emitted = sim.emitted()
    posts = flood(emitted, random.Random(SEED))
    shares = [posts[k::SENDERS] for k in range(SENDERS)]
    with app_server(app_env(fault_db_url), tmp_path) as server, ThreadPoolExecutor(SENDERS) as pool:
        url = f"{server.base}/webhooks/wsapme/{WEBHOOK_SECRET}"
        results = [r for share in pool.map(lambda p: deliver(url, p), shares) for r in share]

    assert all(200 <= code < 300 for code, _tries in results), Counter(c for c, _ in results)
    assert "Traceback" not in server.output(), server.output()[-3000:]
    stored = inbox(fault_engine)
    assert len(stored) == len(posts), "each accepted post is exactly one inbox row"
    assert_every_event_kept(emitted, stored)
    kinds = Counter(p.kind for p in posts)
    assert Counter(e.state for e in stored) == {
        "applied": kinds["event"] + kinds["duplicate"], "unparseable": kinds["garbage"],
        "waiting": kinds["unknown-id"], "ignored": kinds["stranger"],
    }
    rows = recipients(fault_engine, blast_id)
    assert assert_statuses_match(emitted, rows) == SIZE
    changes = history(fault_engine)
    for row in rows:
        assert_history_moves_only_up(changes[row.id], row.status)
    assert opted_out(fault_engine) == opt_out_phones(emitted)
    # Each reply kept once, though a third of the posts came twice.
    assert replies_kept(fault_engine) == Counter(("+" + r.to, r.text) for r in emitted.replies)
    figures.update(posts=len(posts), senders=SENDERS, events=kinds["event"],
                   duplicates=kinds["duplicate"], noise=len(posts) - kinds["event"] - kinds["duplicate"],
                   retried_posts=sum(tries > 1 for _c, tries in results))
