"""Each tenant's webhook signing secrets, the Standard Webhooks way (https://www.standardwebhooks.com).

A tenant signs its deliveries with a secret of its own (``whsec_`` + base64 of 32 random bytes), so a
receiver trusts only its sender, never another tenant of the same service. The secrets are kept in
Redis (``keys.tenant_webhook_secrets``) encrypted with a key derived from the service's
``JOBSVC_WEBHOOK_SECRET`` (Fernet: AES-128-CBC and HMAC-SHA256, from the ``cryptography`` package), so
a copy of Redis, a backup or a ``MONITOR`` shows none of them. One secret is current; after a rotation
the one before it goes on signing, beside the new one, until its grace period ends, so that receivers
can move to the new secret without refusing a delivery.

``webhook.deliver`` signs each delivery with what ``signing`` gives (jobs.webhook_signatures).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from redis.asyncio import Redis
from redis.exceptions import WatchError

from jobs.engine import keys
from jobs.webhook_signatures import new_secret

#: what the encryption key is derived for: another use of the service's secret derives another key
KEY_PURPOSE = b"jobsvc tenant webhook secrets v1"
CURRENT, PREVIOUS, PREVIOUS_UNTIL = "current", "previous", "previous_until_ms"
#: the longest a rotated secret may go on signing beside its successor
MAX_GRACE_S = 30 * 86_400


class SecretBox:
    """Seals secrets for keeping in Redis, with a key derived (HKDF-SHA256) from the service's secret."""

    def __init__(self, service_secret: bytes) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEY_PURPOSE).derive(
            service_secret
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, secret: str) -> bytes:
        return self._fernet.encrypt(secret.encode())

    def open(self, sealed: bytes) -> str:
        """The secret; raises UnreadableSecret when it was sealed with another service secret."""
        try:
            return self._fernet.decrypt(sealed).decode()
        except InvalidToken:
            raise UnreadableSecret(
                "a tenant's webhook secret was sealed with another JOBSVC_WEBHOOK_SECRET; rotate it"
            ) from None


class UnreadableSecret(Exception):
    """A sealed secret this service's key does not open (JOBSVC_WEBHOOK_SECRET changed)."""


@dataclass(frozen=True)
class Rotation:
    """A rotation's new secret (shown this once) and until when the one before it still signs (epoch
    ms; None when there was none)."""

    secret: str
    previous_valid_until_ms: int | None


class TenantWebhookSecrets:
    """The tenants' webhook secrets in Redis, sealed by ``box``."""

    def __init__(self, redis: Redis, box: SecretBox) -> None:
        self.redis = redis
        self.box = box

    async def create(self, tenant: str) -> str | None:
        """A first secret for a tenant that has none: the secret (to show once), or None when it has one."""
        secret = new_secret()
        sealed = self.box.seal(secret).decode()  # Fernet tokens are ASCII
        created = await self.redis.hsetnx(keys.tenant_webhook_secrets(tenant), CURRENT, sealed)  # type: ignore[misc]
        return secret if created else None

    async def rotate(self, tenant: str, *, grace_s: int) -> Rotation:
        """A new current secret; the one it replaces signs beside it for ``grace_s`` more seconds."""
        key = keys.tenant_webhook_secrets(tenant)
        secret = new_secret()
        while True:
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    current = await pipe.hget(key, CURRENT)  # type: ignore[misc]
                    until_ms = int(time.time() * 1000) + grace_s * 1000 if current else None
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(key, CURRENT, self.box.seal(secret).decode())
                    if current:
                        pipe.hset(key, mapping={PREVIOUS: current, PREVIOUS_UNTIL: str(until_ms)})
                    else:
                        pipe.hdel(key, PREVIOUS, PREVIOUS_UNTIL)
                    await pipe.execute()
                    return Rotation(secret, until_ms)
                except WatchError:  # another rotation came first: rotate again, on top of it
                    continue

    async def signing(self, tenant: str) -> list[str]:
        """The secrets that sign the tenant's deliveries now: the current one (created if the tenant
        has none yet), and the previous one during its grace period."""
        key = keys.tenant_webhook_secrets(tenant)
        current, previous, until = await self.redis.hmget(key, [CURRENT, PREVIOUS, PREVIOUS_UNTIL])  # type: ignore[misc]
        if current is None:
            await self.create(tenant)
            current = await self.redis.hget(key, CURRENT)  # type: ignore[misc]
        signing = [self.box.open(current)]
        if previous is not None and until is not None and int(until) > time.time() * 1000:
            signing.append(self.box.open(previous))
        return signing
