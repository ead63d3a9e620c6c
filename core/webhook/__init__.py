"""The WSAPME webhook: parse tolerant payloads, keep every body, apply acks and replies."""

from core.webhook.inbox import (
    InboxState,
    Outcome,
    ReplayReport,
    WebhookRules,
    inbox_summary,
    process_entry,
    replay_after_send,
    replay_for_message_ids,
    replay_waiting,
    store_raw,
)
from core.webhook.parse import AckEvent, IncomingMessage, OtherEvent, ParseError, parse_webhook
from core.webhook.secret import (
    accepted_secrets,
    current_secret,
    rotate_secret,
    secret_matches,
    webhook_url,
)

__all__ = [
    "AckEvent",
    "InboxState",
    "IncomingMessage",
    "OtherEvent",
    "Outcome",
    "ParseError",
    "ReplayReport",
    "WebhookRules",
    "accepted_secrets",
    "current_secret",
    "inbox_summary",
    "parse_webhook",
    "process_entry",
    "replay_after_send",
    "replay_for_message_ids",
    "replay_waiting",
    "rotate_secret",
    "secret_matches",
    "store_raw",
    "webhook_url",
]
