"""What every fleet command shares: the connection options, opening a client, turning the
server's refusals into messages, parsing ``KEY=VALUE`` arguments, and showing times.

Argument parsing lives in :mod:`mien.cli.fleet.args`. Used by
:mod:`mien.cli.fleet.personas`, :mod:`~mien.cli.fleet.instances`,
:mod:`~mien.cli.fleet.bindings` and :mod:`~mien.cli.fleet.rollout`. Only the standard
library and Typer are imported at module level; the HTTP client is imported when a command
connects.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from mien.cli.common import PROSE, OutputFormat, fail, paragraphs, print_json, warn
from mien.cli.common import fail as _fail
from mien.cli.common import table as common_table
from mien.cli.fleet import config

if TYPE_CHECKING:
    from mien.client import Client

PANEL = "Connection"

OutputOpt = Annotated[
    OutputFormat, typer.Option("--output", "-o", help="table for people, json for scripts.")
]


def helpful(func: Callable[..., Any]) -> Callable[..., Any]:
    """A command whose docstring is its help, laid out by :func:`paragraphs`."""
    if func.__doc__:
        func.__doc__ = paragraphs(func.__doc__)
    return func


# --- connecting ----------------------------------------------------------------------------


_CONNECTION_PARAMS = [
    inspect.Parameter(
        "mien_server",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option(
                "--server",
                metavar="URL",
                help=f"The mien server (else ${config.ENV_SERVER}, else the config file).",
                rich_help_panel=PANEL,
                show_default=False,
            ),
        ],
    ),
    inspect.Parameter(
        "mien_token",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option(
                "--token",
                metavar="TOKEN",
                help=f"API token (else ${config.ENV_TOKEN}, else the config file). Prefer "
                "those two: a flag is visible to other users in the process list.",
                rich_help_panel=PANEL,
                show_default=False,
            ),
        ],
    ),
    inspect.Parameter(
        "mien_profile",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option(
                "--profile",
                metavar="NAME",
                help=f"Use \\[profiles.NAME] of the config file (else ${config.ENV_PROFILE}).",
                rich_help_panel=PANEL,
                show_default=False,
            ),
        ],
    ),
    inspect.Parameter(
        "mien_ca_cert",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            Path | None,
            typer.Option(
                "--ca-cert",
                metavar="FILE",
                help=f"CA bundle for a server with a private certificate "
                f"(else ${config.ENV_CA_CERT}, else ca_cert in the config file).",
                rich_help_panel=PANEL,
                show_default=False,
            ),
        ],
    ),
    inspect.Parameter(
        "mien_insecure",
        inspect.Parameter.KEYWORD_ONLY,
        default=False,
        annotation=Annotated[
            bool,
            typer.Option(
                "--insecure",
                help="Do not verify the server's certificate (tests only).",
                rich_help_panel=PANEL,
            ),
        ],
    ),
]
_CONNECTION_NAMES = tuple(p.name for p in _CONNECTION_PARAMS)
_META_KEY = "mien.connection"


def connected(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the connection options and call it with ``conn=`` (a
    :class:`~mien.cli.fleet.config.Connection`), resolved from flags, environment and file.

    Typer reads a command's parameters from its signature, so the wrapper's signature is
    the command's own (without ``conn``) plus the connection options, which are written
    once here instead of in every command, and a context parameter (Typer fills it in).
    A group callback given options before its subcommand (``mien audit --server URL
    verify``) is called with ``conn=None``; the subcommand connects with those options
    under its own.
    """
    helpful(func)
    own = [
        p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != "conn"
    ]
    ctx_name = next(
        (
            p.name
            for p in own
            if isinstance(p.annotation, type) and issubclass(p.annotation, typer.Context)
        ),
        None,
    )
    extra = []
    if ctx_name is None:
        ctx_name = "mien_ctx"
        extra.append(
            inspect.Parameter(ctx_name, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
        )

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        flags = {name[len("mien_") :]: kwargs.pop(name, None) for name in _CONNECTION_NAMES}
        ctx = kwargs[ctx_name] if ctx_name != "mien_ctx" else kwargs.pop(ctx_name)
        if getattr(ctx, "invoked_subcommand", None) is not None:
            ctx.meta[_META_KEY] = flags  # meta is shared with the subcommand's context
            kwargs["conn"] = None
        else:
            inherited = ctx.meta.get(_META_KEY, {})
            kwargs["conn"] = resolve_connection(
                {k: flags.get(k) or inherited.get(k) for k in flags}
            )
        return func(*args, **kwargs)

    params = [*own, *_CONNECTION_PARAMS, *extra]
    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__  # Typer must see the new signature, not the wrapped one's
    return wrapper


def resolve_connection(
    flags: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> config.Connection:
    environ = os.environ if env is None else env
    path = config.config_path(environ)
    ca_cert = flags.get("ca_cert")
    if ca_cert is not None:
        if not Path(ca_cert).is_file():
            fail(f"--ca-cert {ca_cert}: no such file", 2)
        flags = {**flags, "ca_cert": str(Path(ca_cert).absolute())}
    if flags.get("insecure") and flags.get("ca_cert"):
        fail("give --ca-cert or --insecure, not both", 2)
    try:
        data = config.read_config(path)
        if data is not None and config.loose_permissions(path, data):
            warn(f"{path} holds a token and others can read it: chmod 600 {path}")
        return config.resolve(flags, environ, data, path, flags.get("profile"))
    except config.ConfigError as exc:
        fail(str(exc), 2)


@contextlib.contextmanager
def client(conn: config.Connection, timeout: float = 30.0) -> Iterator[Client]:
    """A client for ``conn``; any :class:`~mien.client.ClientError` inside the block becomes
    a one-line message (exit 1) that names the server or the refusal."""
    from mien.client import Client, ClientError

    if conn.ca_cert and not Path(conn.ca_cert).is_file():
        fail(f"ca_cert {conn.ca_cert} (from {conn.origin('ca_cert')}): no such file", 2)
    try:
        api = Client(conn.server, conn.token, timeout=timeout, verify=conn.verify())
    except (OSError, ValueError) as exc:  # a CA bundle that does not load
        fail(f"cannot use the CA bundle {conn.ca_cert}: {exc}", 2)
    try:
        with api:
            yield api
    except ClientError as exc:
        refused(exc, conn)


def refused(exc: Exception, conn: config.Connection) -> NoReturn:
    """Fail with what the server (or the network) said, and what to do about it."""
    from mien.client import errors

    details: dict[str, Any] = {"server": conn.server}
    if isinstance(exc, errors.ClientError):
        details.update(
            {"http_status": exc.status, "server_code": exc.code, "problems": exc.problems}
        )
    fail = functools.partial(_fail, details=details)

    if isinstance(exc, errors.ConnectError):
        reason = str(exc.__cause__ or exc).strip() or type(exc.__cause__).__name__
        hint = ""
        if "CERTIFICATE_VERIFY_FAILED" in reason or "certificate" in reason.lower():
            hint = " (a private CA? pass --ca-cert FILE or set ca_cert in the config file)"
        elif "WRONG_VERSION_NUMBER" in reason or "record layer" in reason:
            hint = " (is it serving plain http rather than https?)"
        fail(
            f"cannot reach the mien server at {conn.server} "
            f"(from {conn.origin('server')}): {reason}{hint}"
        )
    if isinstance(exc, errors.Timeout):
        fail(f"the mien server at {conn.server} did not answer in time: {exc}")
    if isinstance(exc, errors.Unauthorized):
        fail(
            f"the server at {conn.server} refused the token from {conn.origin('token')}: "
            f"{exc.message}"
        )
    if isinstance(exc, errors.ProtocolError):
        fail(
            f"{conn.server} answered something mien cannot read (is it a mien server of "
            f"this version?): {exc}"
        )
    if isinstance(exc, errors.Unavailable):
        fail(f"the server at {conn.server} is unavailable: {exc} (retry later)")
    fail(str(exc))


# --- showing -------------------------------------------------------------------------------


def ago(when: datetime | None, now: datetime | None = None) -> str:
    """``12s ago``, ``3m ago``, ``2h ago``, ``5d ago``; ``never`` for ``None``."""
    if when is None:
        return "never"
    now = now or datetime.now(UTC)
    seconds = (now - when).total_seconds()
    if seconds < 0:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def short_hash(value: str | None) -> str:
    """``sha256:852f4fd17b28`` — enough to tell versions apart in a table."""
    if not value:
        return "-"
    algo, _, digest = value.partition(":")
    return f"{algo}:{digest[:12]}" if digest else value[:12]


def tags_text(tags: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(tags.items())) or "-"


def selector_text(selector: Mapping[str, Any]) -> str:
    if not selector:
        return "(every instance)"
    parts = []
    for key, value in sorted(selector.items()):
        shown = ",".join(value) if isinstance(value, list) else value
        parts.append(f"{key}={shown}")
    return " ".join(parts)


def local_time(when: datetime | str | None) -> str:
    """A time in the local zone, to the second."""
    if when is None:
        return "-"
    if isinstance(when, str):
        try:
            parsed = datetime.fromisoformat(when)
        except ValueError:
            return when
    else:
        parsed = when
    return parsed.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def table(
    columns: list[str],
    rows: list[list[Any]],
    title: str | None = None,
    wrap: tuple[str, ...] = PROSE,
) -> None:
    """Rows as a table on stdout (:func:`mien.cli.common.table`: nothing is cut short).
    Piped output without ``COLUMNS`` is laid out 250 columns wide rather than 80."""
    width = None
    if not is_tty(sys.stdout) and not os.environ.get("COLUMNS"):
        width = 250
    common_table(columns, rows, title=title, wrap=wrap, width=width)


def escape_cell(value: Any) -> str:
    from rich.markup import escape

    return "" if value is None else escape(str(value))


def dump(value: Any) -> None:
    """Print a model, or a list of them, as JSON on stdout."""
    print_json(_plain(value))


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def is_tty(stream: Any = None) -> bool:
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())
