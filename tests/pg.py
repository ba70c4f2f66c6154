"""A throwaway PostgreSQL for tests and benchmarks: a real cluster in a temporary directory.

``PostgresProvider.start()`` gives, in order of preference:

1. the server named by ``MIEN_TEST_PG_URL`` (``postgresql://user:password@host:port/db``),
   in which fresh databases are created and dropped;
2. a new cluster made with ``initdb``/``pg_ctl`` (PostgreSQL's own binaries, found in
   ``/usr/lib/postgresql/*/bin``, ``pg_config --bindir`` or ``PATH``) in a temporary
   directory on a free loopback port, run as the ``postgres`` user when we are root
   (PostgreSQL refuses to run as root), with fsync off: it is thrown away afterwards.

When neither is possible, :class:`PostgresUnavailable` says why, and tests skip with that
message. Import it from a conftest (it has no pytest dependency) or from a benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ENV = "MIEN_TEST_PG_URL"


class PostgresUnavailable(Exception):
    """No PostgreSQL to test against; the message says what is missing."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are (newest version first)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    if shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                ["pg_config", "--bindir"], capture_output=True, text=True, check=True
            )
            candidates.append(out.stdout.strip())
    found = shutil.which("initdb")
    if found:
        candidates.append(str(Path(found).parent))
    for c in candidates:
        if (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    return None


async def _execute(dsn: str, statement: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@dataclass
class PostgresProvider:
    """A PostgreSQL server we may create databases in."""

    admin_dsn: str  # plain libpq URL of a database to run CREATE DATABASE from
    root: Path | None = None  # our own cluster's directory (None: an external server)
    bindir: Path | None = None
    run_as: list[str] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, *, durable: bool = False) -> PostgresProvider:
        """A server to create databases on. Our own cluster runs with fsync off unless
        ``durable`` (PostgreSQL's defaults, as a real server runs; for benchmarks)."""
        url = os.environ.get(ENV)
        if url:
            provider = cls(admin_dsn=url.replace("postgresql+asyncpg://", "postgresql://"))
            try:
                asyncio.run(_execute(provider.admin_dsn, "SELECT 1"))
            except Exception as exc:
                raise PostgresUnavailable(f"{ENV}={url}: cannot connect: {exc}") from exc
            return provider
        return cls._own_cluster(durable=durable)

    @classmethod
    def _own_cluster(cls, *, durable: bool = False) -> PostgresProvider:
        bindir = find_bindir()
        if bindir is None:
            raise PostgresUnavailable(
                f"no PostgreSQL: install its server binaries (initdb, pg_ctl) or set {ENV}"
            )
        run_as: list[str] = []
        root = Path(tempfile.mkdtemp(prefix="mien-pg-"))
        if os.geteuid() == 0:
            if not shutil.which("runuser"):
                raise PostgresUnavailable("running as root without `runuser` to become postgres")
            try:
                import pwd

                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    "running as root and there is no `postgres` user"
                ) from None
            os.chown(root, pw.pw_uid, pw.pw_gid)
            run_as = ["runuser", "-u", "postgres", "--"]
        port = free_port()
        provider = cls(
            admin_dsn=f"postgresql://postgres@127.0.0.1:{port}/postgres",
            root=root,
            bindir=bindir,
            run_as=run_as,
        )
        try:
            provider._run(
                "initdb",
                "-D",
                str(root / "data"),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            )
            options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c max_connections=400"
            if not durable:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            provider._run(
                "pg_ctl",
                "-D",
                str(root / "data"),
                "-l",
                str(root / "log"),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            )
        except subprocess.CalledProcessError as exc:
            log = (
                (root / "log").read_text(errors="replace")[-2000:]
                if (root / "log").exists()
                else ""
            )
            shutil.rmtree(root, ignore_errors=True)
            raise PostgresUnavailable(
                f"could not start a PostgreSQL cluster: {exc.stderr or exc}\n{log}"
            ) from exc
        return provider

    def _run(self, tool: str, *args: str) -> None:
        assert self.bindir is not None
        subprocess.run(
            [*self.run_as, str(self.bindir / tool), *args],
            check=True,
            capture_output=True,
            text=True,
            cwd=str(self.root),
        )

    def new_database(self) -> str:
        """A new empty database; its SQLAlchemy (asyncpg) URL."""
        name = f"mien_test_{uuid.uuid4().hex[:12]}"
        asyncio.run(_execute(self.admin_dsn, f'CREATE DATABASE "{name}"'))
        self.databases.append(name)
        parts = urlsplit(self.admin_dsn)
        return urlunsplit(("postgresql+asyncpg", parts.netloc, f"/{name}", "", ""))

    def cpu_seconds(self) -> float:
        """CPU time of our own cluster's processes (0 for an external server)."""
        if self.root is None:
            return 0.0
        import psutil

        try:
            pid = int((self.root / "data" / "postmaster.pid").read_text().split()[0])
            main = psutil.Process(pid)
            total = 0.0
            for proc in [main, *main.children()]:
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    total += times.user + times.system
            return total
        except (OSError, ValueError, psutil.Error):
            return 0.0

    def drop_databases(self) -> None:
        for name in self.databases:
            with contextlib.suppress(Exception):
                asyncio.run(
                    _execute(self.admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                )
        self.databases.clear()

    def stop(self) -> None:
        if self.root is None:
            self.drop_databases()
            return
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
