"""How a webhook request is signed, and how a receiver checks it. Pure; used by the
``webhook`` driver, its tests and (as the reference) by receivers written in Python.

The signature is HMAC-SHA256, keyed with the provider's secret, over the bytes
``TIMESTAMP + "." + BODY`` (the timestamp is the decimal Unix time sent in
:data:`TIMESTAMP_HEADER`). It is sent hex-encoded as ``v1=HEX`` in
:data:`SIGNATURE_HEADER`. A receiver recomputes it over the raw body, compares in constant
time, and refuses a timestamp further than a few minutes from its clock (a replayed request).
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Mien-Timestamp"
SIGNATURE_HEADER = "X-Mien-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
TOLERANCE = 300.0
"""Seconds a receiver should accept between the timestamp and its own clock."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The value of :data:`SIGNATURE_HEADER`: ``v1=`` and the hex HMAC-SHA256."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(
    secret: str, timestamp: str, signed: str, body: bytes, now: float, tolerance: float = TOLERANCE
) -> str | None:
    """Why a received request is not genuine (a sentence), or None when it is."""
    try:
        sent = int(timestamp)
    except ValueError:
        return f"{TIMESTAMP_HEADER} {timestamp!r} is not a Unix time"
    if abs(now - sent) > tolerance:
        return f"{TIMESTAMP_HEADER} is {abs(now - sent):.0f} s away from now (replayed?)"
    if not hmac.compare_digest(signature(secret, sent, body), signed.strip()):
        return f"{SIGNATURE_HEADER} does not match the body"
    return None
