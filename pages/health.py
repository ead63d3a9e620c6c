"""Settings & health: is everything working, in plain words."""

import streamlit as st

from core.errors import BlastError
from core.gateway import make_client
from core.health import collect, device_state
from core.webhook.secret import current_secret, rotate_secret, webhook_url
from dashboard.data import get_engine, session, settings
from dashboard.format import ago
from dashboard.layout import page_header

page_header("Settings & health", "Everything the tracker depends on, and whether it is working.")
cfg = settings()
engine = get_engine()
with session() as s:
    health = collect(s, engine=engine, settings=cfg)
    secret = current_secret(s, settings=cfg)

for note in health.notes:
    st.warning(note, icon=":material/warning:")

gateway, hook = st.columns(2)
with gateway:
    st.subheader("Gateway")
    if cfg.sandbox:
        st.write("**Sandbox** — the built-in practice gateway. Nothing reaches real phones.")
    else:
        st.write(f"**WSAPME** at `{cfg.wsapme_api_url}`, sending from device **{cfg.wsapme_device}**.")
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
        st.caption("In sandbox mode the practice gateway posts to this server by itself; this "
                   "address matters once WSAPME is connected.")
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
        for w in health.workers:
            st.write(f"✅ Worker `{w.name}` checked in {ago(w.last_seen)}; {w.sent:,} sent since it started.")
    st.write(
        f"Pacing: **{cfg.send_pacing}**. Worker inside this dashboard: "
        f"**{'on' if cfg.run_worker else 'off'}**."
    )
with polling:
    st.subheader("Status polling")
    state = health.polling
    if state is None:
        st.write(f"Mode **{cfg.status_polling}**; not run yet.")
    else:
        words = "asking the gateway" if state.get("active") else "idle (webhooks are arriving)"
        st.write(f"Mode **{state.get('mode')}**: {words}, checked {ago(health.polling_seen)}.")
        round_ = state.get("last_round")
        if round_:
            st.caption(
                f"Last round: asked about {round_['asked']}, {round_['changed']} changed, "
                f"{round_['unknown']} unknown, {round_['errors']} errors."
            )

st.subheader("Database and time")
st.write(f"**{health.database_kind}** ({health.database_where}), schema revision `{health.schema_revision}`.")
st.write(
    f"Team time zone **{cfg.app_timezone}**; numbers without a country code are read as "
    f"**{cfg.phone_region}** numbers; replies count within **{cfg.reply_window_hours:g} hours** "
    "of a message."
)
