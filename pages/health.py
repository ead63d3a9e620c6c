"""Settings & health: is everything working, in plain words."""

import streamlit as st
from streamlit import config as st_config

from core import rollup_cache
from core.gateway import make_client
from core.health import collect, device_state
from core.left_behind import left_behind
from core.webhook.inbox import replay_set_aside
from core.webhook.route import turned_away
from core.webhook.secret import current_secret, rotate_secret, webhook_url
from dashboard.data import get_engine, session, settings
from dashboard.format import ago, plural
from dashboard.health_views import SERVER_DETAILS, gone_words, memory_words, render_database_away, tally
from dashboard.layout import database_away, friendly_errors, page_header
from dashboard.left_behind_views import render_left_behind

page_header("Settings & health", "Everything the tracker depends on, and whether it is working.")
cfg = settings()
if "public_url" not in cfg.model_fields_set:  # unset: this server, on the port it listens on
    cfg = cfg.model_copy(update={"public_url": f"http://localhost:{st_config.get_option('server.port')}"})
try:
    engine = get_engine()
    with session() as s:
        health = collect(s, engine=engine, settings=cfg)
        secret = current_secret(s, settings=cfg)
        earlier = left_behind(s, settings=cfg)
except Exception as exc:
    if not database_away(exc):
        raise
    render_database_away(exc, cfg)
    st.stop()
for note in health.notes:
    st.warning(f"{note.words} Whoever runs the server can fix this (see “{SERVER_DETAILS}” at the "
               "bottom of this page).", icon=":material/warning:")
render_left_behind(earlier)

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
    paste = ("paste it into WSAPME's webhook settings for the device and turn on “Enable status” "
             "there, so that received and read show up, not only replies")
    if cfg.sandbox:
        st.write("In practice mode the test gateway sends its receipts and replies here by itself. "
                 f"Once WSAPME is connected, it sends them to this address: {paste}.")
    else:
        st.write(f"WSAPME sends receipts and replies to this address: {paste}.")
    reveal = st.toggle(
        "Show the full address",
        key="reveal_webhook",
        help="Anyone who has the address can send events, so keep it private.",
    )
    if reveal:
        st.code(webhook_url(cfg, secret, reveal=True), language=None, wrap_lines=True)
    else:
        # As plain text, with no copy icon: the hidden address pasted into WSAPME would not work.
        st.text(webhook_url(cfg, secret))
        st.caption("Part of it is hidden: turn on “Show the full address” to copy it.")
    events = health.events
    last = health.inbox["last_received_at"]
    st.write(f"Last event received: **{ago(last)}**." if last else "No event received yet.")
    refused, last_refused = turned_away.lately()
    if refused:
        were = "was" if refused == 1 else "were"
        st.warning(f"{plural(refused, 'post', 'posts')} came in the last hour to a webhook address with "
                   f"a wrong or old secret, the last one {ago(last_refused)}, and {were} turned away. If "
                   "WSAPME sent them, its events are lost: paste the address above into its webhook "
                   "settings.", icon=":material/link_off:")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(
        "Applied",
        f"{events.applied:,}",
        help="Receipts (received, read) and replies that updated a message, and requests to stop.",
    )
    c2.metric(
        "Not needed",
        f"{events.not_needed:,}",
        help="Events with nothing to update: group messages, status posts, other news from WhatsApp, "
        "and messages from numbers no blast messaged lately (those are listed on the Replies page).",
    )
    c3.metric(
        "Waiting",
        f"{events.waiting:,}",
        help="Receipts and replies that came before their message's send was saved, or that have "
        "just arrived: applied by themselves as soon as they can be. One whose message has not "
        f"turned up within {cfg.webhook_wait_minutes:g} minutes is set aside.",
    )
    c4.metric(
        "Set aside",
        f"{events.set_aside:,}",
        help="Events that could not be used: ones that could not be read, that are about a message "
        "but in a form or with a status this version does not know, whose message never turned up, "
        "or that failed again and again. Kept, never deleted, so they can be looked at or applied again.",
    )
    if cfg.webhook_secret is None:
        with st.popover("Change the secret address"):
            st.write(
                "The old address keeps working for 7 days, so no event is lost while you "
                "paste the new one into WSAPME."
            )
            if st.button("Make a new address", key="rotate_secret"):
                with friendly_errors("make a new address") as done, session() as s:
                    rotate_secret(s, settings=cfg)
                if done.ok:
                    st.rerun()

HELD_SHOWN = 5


workers, polling = st.columns(2)
with workers:
    st.subheader("Sending")
    for held in health.held[:HELD_SHOWN]:
        st.warning(f"**{held.name or 'Untitled blast'}** (blast #{held.id}) is paused. {held.why}",
                   icon=":material/pause_circle:")
        st.page_link("pages/blast.py", label=f"Open blast #{held.id}", query_params={"blast": held.id},
                     icon=":material/open_in_new:")
    if len(health.held) > HELD_SHOWN:
        more = len(health.held) - HELD_SHOWN
        st.caption(f"{plural(more, 'more blast')} stopped the same way: resume each once it is fixed.")
    refused = health.refusals
    if refused and refused.blast_id not in {h.id for h in health.held}:  # said once, above
        failed = refused.count - refused.unknown
        if not refused.unknown:
            how = "WSAPME turned each of them down"
        elif not failed:
            how = "WSAPME did not confirm any of them, so they may or may not have arrived"
        else:
            how = (f"WSAPME turned down {failed:,} and did not confirm {refused.unknown:,}, which may or "
                   "may not have arrived")
        latest = f" The latest ({ago(refused.at)}): {refused.reason}" if refused.reason else ""
        st.warning(f"The last {refused.count:,} messages sent did not go through: {how}.{latest} Open "
                   f"blast #{refused.blast_id} to see each message and why; once the cause is fixed, "
                   "tick the ones that failed there and send them again.",
                   icon=":material/error:")
        st.page_link("pages/blast.py", label=f"Open blast #{refused.blast_id}",
                     query_params={"blast": refused.blast_id}, icon=":material/open_in_new:")
    if health.workers:
        latest_seen = max(w.last_seen for w in health.workers)
        sent = sum(w.sent for w in health.workers)
        tried = sum(w.tried for w in health.workers)
        checked = f"checked {ago(latest_seen)}; {tally(sent, tried, many=len(health.workers) > 1)}"
        if health.sending_blocked:
            st.write(f"⚠️ Messages are not going out (see above) until that is fixed. Sending itself "
                     f"is running: {checked}.")
        elif sent:
            st.write(f"✅ Messages can go out: {checked}.")
        elif tried:
            st.write(f"⚠️ The gateway has not confirmed taking any message yet: {checked}.")
        else:  # nothing went out yet: whether the gateway takes messages is not known
            st.write(f"Ready to send: {checked}. Whether the gateway takes messages shows once the "
                     "first one goes out.")
    else:
        st.write("⚠️ Nothing is sending messages right now (see the warning at the top). "
                 + gone_words(health.gone))
    if cfg.send_pacing == "on":
        st.write("Messages go out with a pause between them, as a person would send them, so that "
                 "WhatsApp does not block the number.")
    else:
        st.write("Messages go out one right after another, with no pauses.")
with polling:
    st.subheader("Checking on messages")
    state = health.polling
    receipts = health.receipts
    if receipts is not None and receipts.missing:
        since = (f"none has come for {ago(receipts.last_receipt_at).removesuffix(' ago')}"
                 if receipts.last_receipt_at else "none has come yet")
        asking = ("Until it is, reads will not show: the tracker is set not to ask WSAPME itself."
                  if cfg.status_polling == "off" else
                  "Meanwhile the tracker asks WSAPME itself about recent messages, so received and "
                  "read still show, a little later.")
        st.warning(f"Receipts (received and read ticks) are not arriving: {since}, though replies "
                   "are. WSAPME is probably set not to send them: in WSAPME, open the device's webhook "
                   f"settings and turn on “Enable status”. {asking}", icon=":material/warning:")
    if cfg.status_polling == "off":
        st.write("Reads and replies come only when the gateway sends them; the tracker does not ask.")
    elif state and state.get("active"):
        st.write(f"Asking the gateway about recent messages, checked {ago(health.polling_seen)}.")
    elif receipts is not None and (receipts.missing or receipts.silent):
        pass  # the warnings above say what is going on
    elif state is None:
        st.write("When no receipts arrive for a while, the tracker asks the gateway itself. "
                 "It has not needed to yet.")
    elif receipts is not None and receipts.arriving:
        st.write(f"Not needed now: receipts are arriving by themselves (the last came "
                 f"{ago(receipts.last_receipt_at)}; checked {ago(health.polling_seen)}).")
    else:
        st.write(f"The tracker asks the gateway itself once no receipt has come for "
                 f"{cfg.poll_webhook_silence_minutes:g} minutes (checked {ago(health.polling_seen)}).")
    round_ = state.get("last_round") if state else None
    if round_:
        changed, asked = round_["changed"], round_["asked"]
        news = "none" if not changed else f"{changed:,}"
        st.caption("The last time the tracker looked, it had no messages to ask the gateway about."
                   if not asked else f"The last time the tracker asked the gateway, about "
                   f"{plural(asked, 'message')}, {news} had a new status.")

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
    last = gone_words(health.gone, named=True).rstrip(".")
    seen = "; ".join(f"`{w.name}` checked in {ago(w.last_seen)}, {tally(w.sent, w.tried)}"
                     for w in health.workers) or f"none lately. {last}"
    st.markdown(
        f"**Send workers**: {seen}. Worker inside this dashboard (`RUN_WORKER`): "
        f"**{'on' if cfg.run_worker else 'off'}**; `SEND_PACING`: **{cfg.send_pacing}**."
    )
    polling_words = f"**Status polling** (`STATUS_POLLING`): **{cfg.status_polling}**"
    if cfg.status_polling == "auto":
        polling_words += (f", polls only after {cfg.poll_webhook_silence_minutes:g} minutes "
                          "without a delivery or read receipt (replies do not count)")
    if round_:
        polling_words += (f"; last round: asked {round_['asked']}, {round_['changed']} changed, "
                          f"{round_['unknown']} unknown, {round_['errors']} errors")
    st.markdown(polling_words + ".")
    st.markdown(
        f"**Database**: {health.database_kind} ({health.database_where}), "
        f"schema revision `{health.schema_revision}`."
    )
    if (watching := rollup_cache.watch(get_engine())) is not None:
        st.markdown(f"**Funnel counts kept in memory**: {memory_words(watching)}")
    if events.set_aside:
        st.markdown(f"**Webhook events set aside**: {events.set_aside:,}, kept in `webhook_inbox` (the "
                    "reason in `detail`). After an update that reads more shapes, a corrected "
                    "`WSAPME_ACK_NUMBERING`, or a fix for what made applying fail (state `failed`), "
                    "apply them again (also `python -m core replay-webhooks`).")
        if st.button("Apply the set-aside events again", key="replay_set_aside"):
            with st.spinner("Applying them again…"):
                report = replay_set_aside(get_engine())
            st.success(report.set_aside_words())
