"""The first admin token: made once, when a new database is first served.

It is printed once and written to a 0600 file (``<data>/admin.token``); only its hash is
stored. Several replicas starting together on a new PostgreSQL database agree on one
bootstrap through a unique row. ``mien server new-admin-token`` makes another one
(for whoever has the database and lost the first).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from mien.server.auth import hash_secret, new_secret
from mien.server.store import tokens as tokens_q
from mien.server.store.tables import server_meta

if TYPE_CHECKING:
    from mien.server.state import ServerState
    from mien.server.tx import Tx


def write_secret(path: Path, secret: str) -> None:
    """Write ``secret`` to ``path`` readable by its owner only (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (secret + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


async def make_admin_token(tx: Tx, name: str, actor: str, reason: str) -> str:
    secret = new_secret("api")
    token_id = str(uuid.uuid4())
    await tokens_q.create(
        tx.session,
        token_id=token_id,
        name=name,
        kind="api",
        role="admin",
        secret_hash=hash_secret(secret),
        actor=actor,
        now=tx.now,
    )
    tx.audit(actor, "token.create", token_id=token_id, name=name, role="admin", reason=reason)
    return secret


async def ensure_admin(state: ServerState) -> tuple[str, Path] | None:
    """Create the first admin token if this database never had one: (secret, file)."""
    path = state.settings.admin_token_path
    async with state.db.read() as s:
        done = (
            await s.execute(select(server_meta.c.key).where(server_meta.c.key == "bootstrap"))
        ).first()
    if done is not None:
        return None
    try:
        async with state.transaction() as tx:
            await tx.session.execute(
                server_meta.insert().values(key="bootstrap", value=tx.now.isoformat())
            )
            secret = await make_admin_token(tx, "admin", "mien-server", "first start")
            write_secret(path, secret)
    except IntegrityError:
        return None  # another replica bootstrapped this database at the same moment
    return secret, path
