"""Settings & health: what the send workers did, in words."""

import streamlit as st
from sqlalchemy.exc import InterfaceError, OperationalError

from core.config import Settings
from core.db import driver_says, engine_for
from core.health import WorkerGone, database_kind, database_where
from core.rollup_cache import Watch
from dashboard.format import ago, plural
from dashboard.layout import say_database_away

SERVER_DETAILS = "For whoever runs the server"


def render_database_away(exc: OperationalError | InterfaceError, cfg: Settings) -> None:
    """The page whoever runs the server opens, while the database does not answer: which
    database it is, and what its driver said (never the password)."""
    say_database_away(exc, "Settings & health")
    with st.expander(SERVER_DETAILS, icon=":material/dns:", expanded=True):
        engine = engine_for(cfg.sqlalchemy_url)  # made already: this only finds it
        said = driver_says(exc)
        st.markdown(f"**Database**: {database_kind(engine)} ({database_where(engine)}) does not answer"
                    + (f": {said}" if said else "") + ". Check that it is running and that this server "
                    "can reach it, and `DATABASE_URL` (restart after changing it).")


def memory_words(watch: Watch) -> str:
    """Whether this server answers funnels from memory (`core.rollup_cache`), for whoever runs it."""
    asked = watch.hits + watch.misses
    if watch.trusted():
        return (f"on: {plural(watch.hits, 'funnel question')} of {asked:,} answered from memory since "
                "this server started; a change to a blast is read from the database's change log "
                "(`blast_count_changes`) within a fifth of a second.")
    if watch.resting():
        return ("on, resting: no page has asked for a funnel in the last two minutes; the next one "
                "starts it.")
    return ("off for now: the database's change log (`blast_count_changes`) could not be read in "
            "the last second, so every funnel is read from the database (never out of date, a "
            "millisecond slower); the server's log says why.")


def tally(sent: int, tried: int, *, many: bool = False) -> str:
    """What a send worker's tries came to: only what the gateway took is sent."""
    who = "they" if many else "it"
    if not tried:
        return f"nothing sent since {who} started"
    # Refused, never reached, or with no clear answer (which may have arrived): not confirmed.
    failed = f", and {tried - sent:,} more tried that WSAPME did not confirm taking" if tried > sent else ""
    return f"{sent:,} sent since {who} started{failed}"


def gone_words(gone: WorkerGone | None, *, named: bool = False) -> str:
    """When sending stopped, and what the last send worker had done; `named`, with its name
    (for whoever runs the server: it means nothing to a marketer)."""
    if gone is None:
        return "No send worker has run on this database yet."
    how = "stopped" if gone.stopped else "was last heard from"
    why = "" if gone.stopped else " without saying it was stopping (its server may have stopped or restarted)"
    done = f"it had sent {plural(gone.sent, 'message')}" if gone.sent else "it had sent nothing"
    if gone.tried > gone.sent:
        done += f", and tried {gone.tried - gone.sent:,} more that WSAPME did not confirm taking"
    who = f"The last send worker, `{gone.name}`," if named else "The last send worker"
    return f"{who} {how} {ago(gone.last_seen)}{why}; {done}."
