"""Who is calling: bearer tokens, stored hashed, and the roles they carry.

Roles: ``admin`` > ``operator`` > ``viewer`` (each may do what the next may), ``user``
(reads personas; the broker's application personas later), ``agent`` (bound to one
instance: may read and report only that instance). Enrollment tokens are not API tokens:
they are accepted only by ``POST /enroll``.

Secrets are 256 random bits, so a single SHA-256 is enough to store them safely (a slow
password hash guards low-entropy secrets; these are not) and lets a token be found by an
index lookup. Verified tokens are cached per replica for ``token_cache_ttl`` seconds;
revoking one reaches every replica at once through the change notifications.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from mien.server.errors import ApiError
from mien.server.store import tokens as store
from mien.server.store.db import Database
from mien.server.store.tokens import TokenRow

Role = Literal["admin", "operator", "viewer", "user", "agent"]
RANK: dict[str, int] = {"viewer": 1, "operator": 2, "admin": 3}
PREFIX = {"api": "mien_a_", "agent": "mien_i_", "enroll": "mien_e_"}


def new_secret(kind: str) -> str:
    return PREFIX[kind] + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """The verified caller."""

    token_id: str
    name: str
    role: Role
    instance_id: str | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return self.name

    def at_least(self, role: str) -> bool:
        return RANK.get(self.role, 0) >= RANK[role]


def permitted(principal: Principal, roles: tuple[str, ...]) -> bool:
    """Whether ``principal`` has one of ``roles`` (``viewer``/``operator``/``admin`` also
    admit the roles above them)."""
    for role in roles:
        if role in RANK:
            if principal.at_least(role):
                return True
        elif principal.role == role:
            return True
    return False


def _unauthorized(message: str) -> ApiError:
    return ApiError(
        401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="mien"'}
    )


def bearer(authorization: str | None) -> str:
    """The token in an ``Authorization: Bearer …`` header."""
    if not authorization:
        raise _unauthorized("no token: send 'Authorization: Bearer <token>'")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise _unauthorized("the Authorization header must be 'Bearer <token>'")
    return value.strip()


def check_row(row: TokenRow | None, now: datetime, *, kind: str | None = None) -> TokenRow:
    """Refuse unknown, revoked, expired tokens (and, given ``kind``, tokens of another kind)."""
    if row is None:
        raise _unauthorized("unknown token")
    if row.revoked_at is not None:
        raise _unauthorized(f"token {row.name!r} was revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise _unauthorized(f"token {row.name!r} has expired")
    if kind is not None and row.kind != kind:
        raise _unauthorized(f"token {row.name!r} is not an {kind} token")
    if kind is None and row.kind == "enroll":
        raise ApiError(
            403,
            "forbidden",
            "an enrollment token is accepted only by POST /api/v1/enroll",
        )
    return row


class TokenCache:
    """Verified tokens by secret hash, so long-polls do not read the database.

    Every live token is loaded at start (and on each full reload); a token not found is
    read from the database and kept for ``ttl`` seconds. Revocations and instance deletions
    drop entries at once through :meth:`forget`.
    """

    def __init__(self, db: Database, ttl: float, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[str, tuple[float, TokenRow]] = {}
        self._by_token: dict[str, str] = {}  # token id -> secret hash
        # instance id -> secret hashes: a tuple, nearly always of one (a set per agent was
        # about 400 bytes each, 4 MiB at ten thousand agents)
        self._by_instance: dict[str, tuple[str, ...]] = {}

    def _put(self, row: TokenRow, at: float) -> None:
        self._entries[row.secret_hash] = (at, row)
        self._by_token[row.id] = row.secret_hash
        if row.instance_id:
            known = self._by_instance.get(row.instance_id, ())
            if row.secret_hash not in known:
                self._by_instance[row.instance_id] = (*known, row.secret_hash)

    def _drop(self, digest: str) -> None:
        entry = self._entries.pop(digest, None)
        if entry is None:
            return
        row = entry[1]
        self._by_token.pop(row.id, None)
        if row.instance_id and row.instance_id in self._by_instance:
            rest = tuple(d for d in self._by_instance[row.instance_id] if d != digest)
            if rest:
                self._by_instance[row.instance_id] = rest
            else:
                del self._by_instance[row.instance_id]

    async def load(self) -> None:
        """Cache every live token at once, so that the reconnect storm after a restart
        does not read the database once per agent."""
        async with self.db.read() as s:
            rows = await store.list_all(s)
        self.clear()
        at = time.monotonic()
        for row in rows:
            if row.kind != "enroll":
                self._put(row, at)

    async def load_instances(self, instance_ids: list[str]) -> None:
        """Cache the tokens of newly enrolled instances (on every replica), so that their
        agents' first long-polls do not read the database one by one."""
        if self.ttl <= 0 or not instance_ids:
            return
        async with self.db.read() as s:
            rows = await store.of_instances(s, instance_ids)
        at = time.monotonic()
        for row in rows:
            self._put(row, at)

    async def row(self, secret: str) -> TokenRow:
        """The token row of ``secret``, cached; an unknown secret is a 401. A cached
        enrollment token's ``uses_left`` may be stale: spending a use rechecks it."""
        return await self.row_by_hash(hash_secret(secret))

    async def row_by_hash(self, digest: str) -> TokenRow:
        """:meth:`row` for a secret known only by its hash (a dashboard session keeps the
        hash, never the secret)."""
        cached = self._entries.get(digest)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        async with self.db.read() as s:
            found = await store.by_hash(s, digest)
        if found is None:
            raise _unauthorized("unknown token")
        if self.ttl > 0:
            if len(self._entries) > 500_000:  # bound memory against a flood of tokens
                self.clear()
            self._put(found, time.monotonic())
        return found

    async def principal(self, authorization: str | None) -> Principal:
        return await self.principal_by_hash(hash_secret(bearer(authorization)))

    async def principal_by_hash(self, digest: str) -> Principal:
        """The caller whose token's secret hashes to ``digest``; checked on every call, so a
        revoked or expired token ends its dashboard sessions too."""
        row = await self.row_by_hash(digest)
        now = self.clock()
        row = check_row(row, now)
        role = "agent" if row.kind == "agent" else row.role
        if role not in ("admin", "operator", "viewer", "user", "agent"):
            raise _unauthorized(f"token {row.name!r} has no role")
        return Principal(row.id, row.name, role, row.instance_id)  # type: ignore[arg-type]

    def forget(self, *, token_id: str | None = None, instance_id: str | None = None) -> None:
        """Drop cached tokens after a revocation or an instance deletion."""
        if token_id is not None and token_id in self._by_token:
            self._drop(self._by_token[token_id])
        if instance_id is not None:
            for digest in list(self._by_instance.pop(instance_id, ())):
                self._drop(digest)

    def clear(self) -> None:
        self._entries.clear()
        self._by_token.clear()
        self._by_instance.clear()
