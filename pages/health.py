"""Settings & health: is everything working, in plain words."""

import streamlit as st

from core.errors import BlastError
from core.gateway import make_client
from core.health import collect, device_state
from core.webhook.inbox import replay_set_aside
from core.webhook.secret import current_secret, rotate_secret, webhook_url
from dashboard.data import get_engine, session, settings
from dashboard.format import ago, plural
from dashboard.layout import page_header

page_header("Settings & health", "Everything the tracker depends on, and whether it is working.")
cfg = settings()
engine = get_engine()
with session() as s:
    health = collect(s, engine=engine, settings=cfg)
    secret = current_secret(s, settings=cfg)

SERVER_DETAILS = "For whoever runs the server"
for note in health.notes:
    st.warning(f"{note.words} Whoever runs the server can fix this (see “{SERVER_DETAILS}” at the "
               "bottom of this page).", icon=":material/warning:")

gateway, hook = st.columns(2)
with gateway:
    st.subheader("Gateway")
    if cfg.sandbox:
        st.write("**Practice mode**: messages go to a built-in test gateway that answers like "
                 "WhatsApp. Nothing reaches real phones.")
    else:
        st.write(f"Sending through **WSAPME** from WhatsApp device **{cfg.wsapme_device}**.")
    if st.button("Check the WhatsApp device", key="check_device"):
        connected, words = device_state(make_client(cfg))
        (st.success if connected else st.error)(words)

with hook:
    st.subheader("Webhook")
    reveal = st.toggle(
        "Show the full address",
        key="reveal_webhook",
        help="Paste this address into WSAPME (device settings → webhook) and turn on "
        "“Enable status”. Anyone who has it can send events, so keep it private.",
    )
    st.code(webhook_url(cfg, secret, reveal=reveal), language=None, wrap_lines=True)
    if cfg.sandbox:
        st.caption("In practice mode the test gateway sends its receipts and replies here by "
                   "itself; this address matters once WSAPME is connected.")
    inbox = health.inbox
    counts = inbox["counts"]
    last = inbox["last_received_at"]
    st.write(f"Last event received: **{ago(last)}**." if last else "No event received yet.")
    c1, c2, c3 = st.columns(3)
    c1.metric("Events applied", f"{counts.get('applied', 0) + counts.get('ignored', 0):,}")
    c2.metric(
        "Waiting",
        f"{counts.get('waiting', 0):,}",
        help="Receipts that arrived before their message's send was saved; applied as soon as it is.",
    )
    c3.metric(
        "Could not be used",
        f"{counts.get('unparseable', 0) + counts.get('unmatched', 0):,}",
        help="Events that could not be read, or whose message never turned up. Kept in the "
        "inbox, never deleted, so they can be looked at or replayed.",
    )
    if cfg.webhook_secret is None:
        with st.popover("Change the secret address"):
            st.write(
                "The old address keeps working for 7 days, so no event is lost while you "
                "paste the new one into WSAPME."
            )
            if st.button("Make a new address", key="rotate_secret"):
                try:
                    with session() as s:
                        rotate_secret(s, settings=cfg)
                    st.rerun()
                except BlastError as exc:
                    st.error(exc.message)

workers, polling = st.columns(2)
with workers:
    st.subheader("Sending")
    if health.workers:
        latest = max(w.last_seen for w in health.workers)
        sent = sum(w.sent for w in health.workers)
        who = "it" if len(health.workers) == 1 else "they"
        st.write(f"✅ Messages can go out: checked {ago(latest)}; {sent:,} sent since {who} started.")
    else:
        st.write("⚠️ Nothing is sending messages right now (see the warning at the top).")
    if cfg.send_pacing == "on":
        st.write("Messages go out with a pause between them, as a person would send them, so that "
                 "WhatsApp does not block the number.")
    else:
        st.write("Messages go out one right after another, with no pauses.")
with polling:
    st.subheader("Checking on messages")
    state = health.polling
    if cfg.status_polling == "off":
        st.write("Reads and replies come only when the gateway sends them; the tracker does not ask.")
    elif state is None:
        st.write("When no receipts arrive for a while, the tracker asks the gateway itself. "
                 "It has not needed to yet.")
    elif state.get("active"):
        st.write(f"Asking the gateway about recent messages, checked {ago(health.polling_seen)}.")
    else:
        st.write(f"Not needed now: receipts and replies are arriving by themselves (checked "
                 f"{ago(health.polling_seen)}).")
    round_ = state.get("last_round") if state else None
    if round_:
        asked = plural(round_["asked"], "message")
        st.caption(f"Last time it asked about {asked}; {round_['changed']:,} had news.")

st.subheader("Database and time")
st.write("All blasts, recipients and statuses are kept in the database, which is working.")
st.write(
    f"Team time zone **{cfg.app_timezone}**; numbers without a country code are read as "
    f"**{cfg.phone_region}** numbers; replies count within **{cfg.reply_window_hours:g} hours** "
    "of a message."
)

with st.expander(SERVER_DETAILS, icon=":material/dns:"):
    st.caption("Settings are environment variables (or lines of `.env`); restart after changing them.")
    if cfg.sandbox:
        st.markdown("**Gateway**: no `WSAPME_TOKEN` is set, so the built-in sandbox gateway stands in "
                    "for WSAPME. Set `WSAPME_TOKEN` and `WSAPME_DEVICE` to send for real.")
    else:
        st.markdown(f"**Gateway**: WSAPME API at `{cfg.wsapme_api_url}`, device `{cfg.wsapme_device}`.")
    for note in health.notes:
        st.markdown(f"**To fix**: {note.fix}")
    seen = "; ".join(f"`{w.name}` checked in {ago(w.last_seen)}, {w.sent:,} sent since it started"
                     for w in health.workers) or "none in the last half minute"
    st.markdown(
        f"**Send workers**: {seen}. Worker inside this dashboard (`RUN_WORKER`): "
        f"**{'on' if cfg.run_worker else 'off'}**; `SEND_PACING`: **{cfg.send_pacing}**."
    )
    polling_words = f"**Status polling** (`STATUS_POLLING`): **{cfg.status_polling}**"
    if cfg.status_polling == "auto":
        polling_words += (f", polls only after {cfg.poll_webhook_silence_minutes:g} minutes "
                          "without any webhook")
    if round_:
        polling_words += (f"; last round: asked {round_['asked']}, {round_['changed']} changed, "
                          f"{round_['unknown']} unknown, {round_['errors']} errors")
    st.markdown(polling_words + ".")
    st.markdown(
        f"**Database**: {health.database_kind} ({health.database_where}), "
        f"schema revision `{health.schema_revision}`."
    )
    set_aside = counts.get("unparseable", 0) + counts.get("unmatched", 0)
    if set_aside:
        st.markdown(f"**Webhook events set aside**: {set_aside:,}, kept in `webhook_inbox`. After an update "
                    "that reads more shapes, or a corrected `WSAPME_ACK_NUMBERING`, apply them again "
                    "(also `python -m core replay-webhooks`).")
        if st.button("Apply the set-aside events again", key="replay_set_aside"):
            with st.spinner("Applying them again…"):
                report = replay_set_aside(get_engine())
            st.success(report.set_aside_words())
