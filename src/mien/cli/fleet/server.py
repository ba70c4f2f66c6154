"""``mien server``: run one replica of the Persona Manager Service, and its offline tools.

``mien server`` serves the API (SQLite in the data directory by default, or ``--db
postgresql+asyncpg://…`` for any number of replicas); ``mien server new-admin-token`` and
``mien server audit-verify`` work on the database directly, with or without a running
server. One process is one replica: run more processes (on PostgreSQL) to scale out.

Only the standard library and Typer are imported here; the server is imported when a
command runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mien.cli.common import OutputFormat, done, fail, info, print_json
from mien.cli.fleet.common import OutputOpt

HELP = (
    "Run the Persona Manager Service (one replica). SQLite in the data directory by "
    "default; --db postgresql+asyncpg://USER:PASSWORD@HOST/DB for several replicas. "
    "Serves the REST API under /api/v1 and the operators' dashboard under /ui (sign in "
    "with an API token; see docs/dashboard.md)."
)

DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Data directory (SQLite database, admin token file). "
        "Default: $XDG_DATA_HOME/mien or ~/.local/share/mien.",
        show_default=False,
    ),
]
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (sqlite+aiosqlite:///PATH or postgresql+asyncpg://…). "
        "Default: SQLite in the data directory.",
        show_default=False,
    ),
]


def _settings(**given: Any) -> Any:
    from mien.server.settings import Settings, SettingsError

    try:
        return Settings.build(**given)
    except SettingsError as exc:
        fail(f"server settings: {exc}", 2)


def _raise_fd_limit() -> None:
    """Thousands of long-polls need thousands of descriptors: use the hard limit."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


async def _preflight(settings: Any) -> None:
    """Open the database and migrate it before uvicorn starts, so a bad URL or an
    unreachable server is one clear message instead of a traceback from the lifespan."""
    from mien.server.store import migrate
    from mien.server.store.db import Database

    db = Database(settings.database_url)
    try:
        await migrate.upgrade(db)
    finally:
        await db.dispose()


_data_lock: list[int] = []  # the lock's descriptor, held for the life of the process


def _lock_data_dir(settings: Any) -> None:
    """Refuse to serve an SQLite data directory that another server already serves."""
    if not settings.is_sqlite:
        return
    from mien.server.datalock import DataDirInUse, lock_data_dir

    try:
        _data_lock.append(lock_data_dir(settings.data_dir))
    except DataDirInUse as exc:
        fail(str(exc), 1)
    except OSError as exc:
        fail(f"--data {settings.data_dir}: cannot lock it: {exc.strerror or exc}", 1)


def _check_tls(cert: Path | None, key: Path | None) -> None:
    if cert is None or key is None:
        return
    import ssl

    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not path.is_file():
            fail(f"{option} {path}: no such file", 2)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        fail(f"--tls-cert {cert} / --tls-key {key}: cannot load: {exc}", 2)


def _open_database(settings: Any) -> None:
    from mien.server.settings import redact_url

    try:
        import asyncio

        asyncio.run(_preflight(settings))
    except Exception as exc:  # the driver's own exception types vary
        fail(f"cannot open the database {redact_url(settings.database_url)}: {_first_line(exc)}", 1)


def _tune_gc() -> None:
    """Keep full garbage collections rare and small.

    Measured with bench/fleet_bench.py, 5,000 parked long-polls: the process holds ~880k
    objects, most belonging to parked requests that live about a minute and so reach the
    oldest generation. Full collections then came every few seconds, took ~450 ms each and
    found next to nothing (requests free themselves by reference counting): they alone made
    the p99 of a single activation 700 ms instead of 30 ms. So: consider a full collection
    100 times less often, and leave the objects of start-up (modules, models, the app) out
    of every scan.
    """
    import gc

    gen0, gen1, _gen2 = gc.get_threshold()
    gc.set_threshold(gen0, gen1, 1000)
    gc.freeze()


def serve(settings: Any, *, access_log: bool = False) -> None:
    """Run one replica until SIGTERM/SIGINT, then stop gracefully: waiting long-polls are
    answered at once (503, reconnect), queued reports are written, nothing is lost."""
    import contextlib
    import logging
    import signal
    import threading

    import uvicorn

    from mien.server.app import create_app
    from mien.server.settings import redact_url

    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    _raise_fd_limit()
    try:
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"--data {settings.data_dir}: cannot create it: {exc.strerror or exc}", 1)
    _lock_data_dir(settings)
    _check_tls(settings.tls_cert, settings.tls_key)
    _open_database(settings)

    def announce(secret: str, path: Path) -> None:
        info("")
        info("  First start: an admin token was created. It is shown this once:")
        info(f"    {secret}")
        info(f"  It is also in {path} (mode 0600). Use it as: Authorization: Bearer <token>")
        info("")

    sock = _bind(settings.host, settings.port, settings.backlog)
    app = create_app(settings, on_admin_token=announce)
    state = app.state.mien
    _tune_gc()
    scheme = "https" if settings.tls_cert else "http"
    info(f"mien server: data directory {settings.data_dir}")
    info(f"mien server: database {redact_url(settings.database_url)}")
    info(f"mien server: admin token file {settings.admin_token_path} (written on first start)")
    info(f"mien server: serving {scheme}://{settings.host}:{settings.port}/api/v1")
    info(f"mien server: dashboard {scheme}://{settings.host}:{settings.port}/ui/")

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            state.request_shutdown()
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self) -> Any:
            # Like uvicorn's, without re-raising the signal afterwards: a graceful stop
            # exits 0.
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(
        app,
        interface="asgi3",  # MienApp.__call__ returns its handler's coroutine (see there)
        # mien never reads the client's address, so X-Forwarded-For handling would be a
        # middleware frame and its work on every request for nothing.
        proxy_headers=False,
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        backlog=settings.backlog,
        log_config=None,
        log_level=settings.log_level,
        access_log=access_log,
        server_header=False,
        timeout_keep_alive=int(max(5, settings.longpoll_max_wait + 5)),
        timeout_graceful_shutdown=30,
    )
    Server(config).run(sockets=[sock])


def _bind(host: str, port: int, backlog: int) -> Any:
    """Listen on HOST:PORT before saying "serving", so a port in use is said plainly
    (uvicorn would log "serving" first and then exit 3 with an OS error)."""
    import errno
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        fail(f"--host {host}: cannot resolve it: {exc.strerror or exc}", 2)
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            fail(
                f"port {port} on {host} is in use by another program; stop it or choose "
                "another with --port",
                1,
            )
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 1)
    sock.set_inheritable(True)
    return sock


def register(app: typer.Typer) -> None:
    server = typer.Typer(name="server", help=HELP, no_args_is_help=False)

    @server.callback(invoke_without_command=True)
    def run(
        ctx: typer.Context,
        host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8470,
        data: DataOption = None,
        db: DbOption = None,
        tls_cert: Annotated[
            Path | None, typer.Option("--tls-cert", help="PEM certificate: serve HTTPS.")
        ] = None,
        tls_key: Annotated[
            Path | None, typer.Option("--tls-key", help="PEM private key of --tls-cert.")
        ] = None,
        max_body: Annotated[
            int | None,
            typer.Option("--max-body", help="Largest request body in bytes (default 4 MiB)."),
        ] = None,
        log_level: Annotated[
            str, typer.Option("--log-level", help="debug, info, warning or error.")
        ] = "info",
        access_log: Annotated[
            bool, typer.Option("--access-log", help="Log every request.")
        ] = False,
    ) -> None:
        """Serve the API until SIGTERM or Ctrl-C (then stop gracefully)."""
        if ctx.invoked_subcommand is not None:
            return
        settings = _settings(
            host=host,
            port=port,
            data_dir=data,
            db_url=db,
            tls_cert=tls_cert,
            tls_key=tls_key,
            max_body_bytes=max_body,
            log_level=log_level.lower(),
        )
        serve(settings, access_log=access_log)

    @server.command("new-admin-token")
    def new_admin_token(
        data: DataOption = None,
        db: DbOption = None,
        name: Annotated[
            str, typer.Option("--name", help="Name of the new token.")
        ] = "admin-recovery",
        output: OutputOpt = OutputFormat.table,
    ) -> None:
        """Make another admin token directly in the database (e.g. the first one was lost).
        Prints it once and writes it to the admin token file (0600)."""
        settings = _settings(data_dir=data, db_url=db)
        import asyncio

        secret = asyncio.run(_new_admin_token(settings, name))
        if output is OutputFormat.json:
            print_json({"name": name, "token": secret, "file": str(settings.admin_token_path)})
            return
        info(f"admin token {name!r} written to {settings.admin_token_path} (mode 0600)")
        sys.stdout.write(secret + "\n")

    @server.command("audit-verify")
    def audit_verify(
        data: DataOption = None, db: DbOption = None, output: OutputOpt = OutputFormat.table
    ) -> None:
        """Check the audit log's hash chain directly in the database (exit 1 if broken)."""
        settings = _settings(data_dir=data, db_url=db)
        import asyncio

        ok, records, head, reason = asyncio.run(_verify(settings))
        if not ok:
            fail(
                f"audit chain BROKEN after {records} good record(s): {reason}",
                1,
                code="audit_broken",
                details={"good_records": records, "reason": reason},
            )
        done(
            output,
            f"audit chain intact: {records} record(s), head {head or '(empty)'}",
            {"intact": True, "records": records, "head": head},
        )

    app.add_typer(server, name="server")


async def _new_admin_token(settings: Any, name: str) -> str:
    import getpass

    from mien.server.bootstrap import make_admin_token, write_secret
    from mien.server.state import ServerState
    from mien.server.store import migrate

    state = ServerState(settings)
    try:
        await migrate.upgrade(state.db)
        async with state.transaction() as tx:
            actor = f"local:{getpass.getuser()}"
            secret = await make_admin_token(tx, name, actor, "mien server new-admin-token")
            # Written before the commit: a token nobody can read is never stored.
            write_secret(settings.admin_token_path, secret)
    except OSError as exc:
        fail(f"cannot write {settings.admin_token_path}: {exc.strerror or exc}", 1)
    except Exception as exc:
        fail(f"cannot open the database: {_first_line(exc)}", 1)
    finally:
        await state.db.dispose()
    return secret


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


async def _verify(settings: Any) -> tuple[bool, int, str | None, str | None]:
    from mien.server.audit import verify
    from mien.server.store.db import Database

    db = Database(settings.database_url)
    try:
        async with db.read() as s:
            result = await verify(s)
    except Exception as exc:
        fail(f"cannot read the audit log: {_first_line(exc)}", 1)
    finally:
        await db.dispose()
    return result.ok, result.records, result.head, result.reason
