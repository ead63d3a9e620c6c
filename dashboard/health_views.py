"""Settings & health: what the send workers did, in words."""

from core.health import WorkerGone
from dashboard.format import ago, plural


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
    return f"{who} {how} {ago(gone.at)}{why}; {done}."
