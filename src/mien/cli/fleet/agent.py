"""``mien agent enroll | run | status``: a machine joining a fleet and following its server.

Thin over :mod:`mien.agent.enrollment` and :mod:`mien.agent.sync`. ``run`` is the
long-running agent (a systemd service or a container's main process); it logs one line per
event to stderr.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import typer

from mien.cli import common
from mien.cli.common import OutputFormat

agent_app = typer.Typer(
    name="agent",
    help=(
        "Join a fleet and follow its server.\n\n"
        "  mien agent enroll --server https://mien.internal:8470 --token ENROLL_TOKEN \\\n"
        "      --tag role=web --tag region=eu --user alice\n"
        "  mien agent run\n\n"
        "The agent long-polls the server, applies the persona it is given (all or nothing, "
        "as `mien apply`), reports the result and runs remote commands through the "
        "persona's routing table."
    ),
    no_args_is_help=True,
)

ROOT = typer.Option(Path("/"), "--root", help="Machine root the agent manages.")


def _tags(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            common.fail(f"--tag {item!r}: write KEY=VALUE, e.g. --tag role=web", 2)
        out[key.strip()] = value.strip()
    return out


def _verify(ca_cert: Path | None, insecure: bool) -> bool | str:
    if insecure and ca_cert:
        common.fail("give --ca-cert or --insecure, not both", 2)
    if ca_cert is not None:
        if not ca_cert.is_file():
            common.fail(f"--ca-cert {ca_cert}: no such file", 2)
        return str(ca_cert.absolute())
    return not insecure


@agent_app.command("enroll")
def enroll_cmd(
    server: str = typer.Option(
        ...,
        "--server",
        envvar="MIEN_SERVER",
        help="The server's URL, e.g. https://mien.internal:8470",
    ),
    token: str = typer.Option(
        ...,
        "--token",
        envvar="MIEN_ENROLL_TOKEN",
        help="An enrollment token (`mien token create --role enroll`).",
    ),
    tag: list[str] = typer.Option(
        [], "--tag", "-t", help="KEY=VALUE tag for bindings (repeatable)."
    ),
    user: str | None = typer.Option(None, "--user", "-u", help="The persona user on this machine."),
    hostname: str | None = typer.Option(
        None,
        "--hostname",
        help="Name to show in the fleet (default: this host's name); operators can use it "
        "in place of the instance id while it is unique.",
    ),
    instance_id: str | None = typer.Option(
        None,
        "--instance-id",
        help="The instance id to enroll as (letters, digits, '.', '_', ':', '-'; default: a "
        "random i-…); refused if an instance has it already.",
    ),
    ca_cert: Path | None = typer.Option(
        None, "--ca-cert", help="CA bundle for a server with a private certificate."
    ),
    insecure: bool = typer.Option(
        False, "--insecure", help="Do not verify the server's certificate (tests only)."
    ),
    root: Path = ROOT,
    output: common.OutputFormat = typer.Option(
        common.OutputFormat.table, "--output", help="table for people, json for scripts."
    ),
) -> None:
    """Trade an enrollment token for this machine's own credential (stored 0600)."""
    from mien.agent.enrollment import enroll
    from mien.client import ClientError
    from mien.protocol import INSTANCE_ID_PATTERN

    tags = _tags(tag)
    if instance_id is not None and not re.match(INSTANCE_ID_PATTERN, instance_id):
        common.fail(
            f"--instance-id {instance_id!r}: 1-128 letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit",
            2,
        )
    try:
        creds = enroll(
            root.absolute(),
            server,
            token,
            tags=tags,
            hostname=hostname,
            instance_id=instance_id,
            verify=_verify(ca_cert, insecure),
            user=user,
        )
    except ClientError as exc:
        common.fail(f"enrollment with {server} failed: {exc}")
    except PermissionError as exc:
        common.fail(f"cannot store the credential: {exc}")
    common.done(
        output,
        f"enrolled as instance {creds.instance_id} with {server}; start the agent with "
        f"`mien agent run --root {root}`",
        {"instance_id": creds.instance_id, "server": server, "root": str(root.absolute())},
    )


def _logger(root: Path) -> Any:
    """The agent's logger, at the level the active persona's ``logging_level`` set
    (``/etc/mien/logging.json``), else at info; lines go to stderr (the journal)."""
    import logging

    from mien.agent.handlers.logging_config import PATH, configure_from

    if not configure_from(root / PATH.lstrip("/")):
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    logger = logging.getLogger("mien.agent")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
    logger.addHandler(handler)
    logger.propagate = False
    return logger


@agent_app.command("run")
def run_cmd(
    root: Path = ROOT,
    user: str | None = typer.Option(
        None, "--user", "-u", help="The persona user (default: from enrollment, or the last apply)."
    ),
    wait: float = typer.Option(
        30.0, "--wait", min=1.0, max=300.0, help="Seconds each long-poll may wait for news."
    ),
    once: bool = typer.Option(
        False, "--once", help="Take one answer from the server, act on it, and exit."
    ),
    sandbox_host: bool = typer.Option(
        False,
        "--sandbox-host",
        help="Also serve the broker: offer this machine's capacity and build the "
        "application personas' sandboxes it is given.",
    ),
    sandbox_driver: str = typer.Option(
        "local", "--sandbox-driver", metavar="NAME", help="Sandbox driver: local or podman."
    ),
    sandbox_idle: float | None = typer.Option(
        None,
        "--sandbox-idle",
        metavar="SECONDS",
        min=1.0,
        help="Reclaim a lease after this long without a command run (default: never).",
    ),
    local: bool = typer.Option(
        False,
        "--local",
        help="No server: run only the adaptation loop of the persona this machine runs.",
    ),
    adapt: bool = typer.Option(
        True, "--adapt/--no-adapt", help="Run the adaptation loop (docs/adaptation.md)."
    ),
    interval: float | None = typer.Option(
        None,
        "--interval",
        min=1.0,
        max=3600.0,
        help="Seconds between samples (default: the persona's telemetry.interval, else 15).",
    ),
    send_every: float = typer.Option(
        10.0,
        "--send-every",
        min=0.2,
        max=3600.0,
        help="Seconds between telemetry batches sent to the server (at most one each).",
    ),
) -> None:
    """Follow the server: apply what it desires, report, run remote commands, and adapt
    the machine within its persona's limits. With --local, adapt only (no server, no
    credential). Stops on SIGTERM/SIGINT (an apply in progress finishes first)."""
    from mien.agent.engine import Engine, EngineError
    from mien.agent.enrollment import AgentError, Credentials
    from mien.agent.sync import Agent

    root = root.absolute()
    if local:
        try:
            engine = Engine(root, user=user)
        except EngineError as exc:
            common.fail(str(exc))
        raise typer.Exit(_run_local(root, engine, interval))
    try:
        creds = Credentials.load(root)
        engine = Engine(root, user=user or creds.user)
    except (AgentError, EngineError) as exc:
        common.fail(str(exc))

    logger = _logger(root)
    agent = Agent(root, creds, engine=engine, wait=wait, log=logger.info, warn=logger.warning)
    from mien.agent.local_api import start_local_api

    # The socket `mien switch` and `mien customize` use without root (docs/switching.md).
    local_api = start_local_api(root, user or creds.user, creds, warn=logger.warning)
    host = _sandbox_host(creds, sandbox_driver, sandbox_idle, logger) if sandbox_host else None
    import threading

    stop = threading.Event()
    if adapt and not once:

        def adapting() -> None:
            # Built in its own thread: its state connection belongs to it.
            loop = _adaptation(root, user or creds.user, interval, logger, creds=creds)
            loop.stopping = stop
            loop.run()

        threading.Thread(target=adapting, name="adaptation", daemon=True).start()
        uploader = _uploader(root, creds, send_every, logger)
        uploader.stopping = stop
        threading.Thread(target=uploader.run, name="telemetry", daemon=True).start()
    try:
        status = agent.run(once=once)
    finally:
        stop.set()
        if host is not None:
            host.stop()
        if local_api is not None:
            local_api.stop()
    raise typer.Exit(status)


def _sandbox_host(creds: Any, driver: str, idle: float | None, logger: Any) -> Any:
    """Start serving the broker in a thread beside the agent's loop."""
    import threading

    from mien.agent.sandbox_host import SandboxHost, SandboxUnavailable, load_driver
    from mien.client import Client

    try:
        loaded = load_driver(driver)
    except SandboxUnavailable as exc:
        common.fail(f"--sandbox-host: {exc}")
    client = Client(creds.server, creds.token, verify=creds.verify)
    host = SandboxHost(
        client, loaded, driver_name=driver, idle_timeout=idle, log=logger.info, warn=logger.warning
    )
    threading.Thread(target=host.run, name="mien-sandbox-host", daemon=True).start()
    return host


def _uploader(root: Path, creds: Any, every: float, logger: Any) -> Any:
    """Sends the adaptation loop's queued samples and events to the server."""
    from mien.agent.adapt.upload import Uploader
    from mien.client import AgentClient

    client = AgentClient(creds.server, creds.token, timeout=30.0, verify=creds.verify)
    return Uploader(root, client.telemetry, every=every, log=logger.info)


def _adaptation(
    root: Path, user: str | None, interval: float | None, logger: Any, *, creds: Any = None
) -> Any:
    """The adaptation loop with its own engine (and so its own state connection); with the
    enrollment's ``creds`` it has a server, which also serves the fleet-wide sources."""
    from mien.agent.adapt.loop import Adaptation
    from mien.agent.engine import Engine

    made: list[Engine] = []

    def engine() -> Engine:
        if not made:
            made.append(Engine(root, user=user))
        return made[0]

    fleet = None
    if creds is not None:
        from mien.client import AgentClient

        fleet = AgentClient(creds.server, creds.token, timeout=30.0, verify=creds.verify)
    return Adaptation(
        root,
        engine,
        interval=interval,
        has_server=creds is not None,
        log=logger.info,
        fleet=fleet,
    )


def _run_local(root: Path, engine: Any, interval: float | None) -> int:
    """``--local``: the adaptation loop in this thread until SIGTERM/SIGINT."""
    import signal

    logger = _logger(root)
    loop = _adaptation(root, engine.user_name, interval, logger)

    def stop(signum: int, _frame: object) -> None:
        loop.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info(f"mien agent (local): adapting {root}")
    loop.run()
    logger.info("stopped")
    return 0


@agent_app.command("status")
def status_cmd(
    root: Path = ROOT, output: OutputFormat = typer.Option(OutputFormat.table, "--output")
) -> None:
    """Show the enrollment (server, instance) and what the server last gave this machine."""
    from mien.agent.enrollment import AgentError, Credentials
    from mien.agent.state import State

    try:
        creds = Credentials.load(root.absolute())
    except AgentError as exc:
        common.fail(str(exc))
    with State(root.absolute()) as state:
        data = {
            "server": creds.server,
            "instance_id": creds.instance_id,
            "user": creds.user or state.get_meta("user"),
            "active": state.get_meta("active"),
            "server_hash": state.get_meta("server_hash"),
            "server_version": state.get_meta("server_version"),
            "local_changes": state.get_meta("server_effective")
            not in (None, state.get_meta("active_hash")),
        }
    if output is OutputFormat.json:
        common.print_json(data)
        return
    for key, value in data.items():
        print(f"{key:<15} {value if value is not None else '-'}")


def register(app: typer.Typer) -> None:
    from mien.cli.fleet import agent_service  # serve-socket, install-service

    agent_service.register_on(agent_app)
    app.add_typer(agent_app)
