"""Webhook signatures the Standard Webhooks way (https://www.standardwebhooks.com), stdlib only: the
secret's format, and the ``webhook-signature`` header a receiver checks with any of the spec's libraries.

A secret is ``whsec_`` and the base64 of random bytes; a delivery's signature is ``v1,`` and the base64
HMAC-SHA256, keyed with those bytes, of ``<webhook-id>.<webhook-timestamp>.<body>``; several signatures
(during a secret's rotation) are separated by spaces.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One signature: ``v1,`` and the base64 HMAC-SHA256 of ``id.timestamp.body``."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_header(signing: list[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: a signature per signing secret, space-separated."""
    return " ".join(signature(secret, message_id, timestamp, body) for secret in signing)
