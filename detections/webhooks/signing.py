"""The Standard Webhooks signature of one delivery attempt.

`webhook-id` is the message's id, the same on every attempt and every resend;
`webhook-timestamp` is taken at the attempt, so a retry hours after the event
is still within a receiver's tolerance (five minutes in the reference
libraries); `webhook-signature` is `v1,` + base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}" keyed with the secret's bytes, made by the reference
library itself so receivers verify with any of its implementations.
"""

from datetime import UTC, datetime

from standardwebhooks import Webhook

USER_AGENT = "vehicle_monitor-webhooks/1"


def signed_headers(*, message_id: str, body: str, secret: str, at: float) -> dict[str, str]:
    """The headers of an attempt made at Unix time `at` (whole seconds are signed and sent)."""
    timestamp = datetime.fromtimestamp(int(at), UTC)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at)),
        "webhook-signature": Webhook(secret).sign(message_id, timestamp, body),
    }
