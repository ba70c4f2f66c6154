"""``mien app``: application personas through the broker (``mien group``, who may ask,
is in :mod:`mien.cli.fleet.groups`).

A lease is asked for with a ``user`` token (``mien token create NAME --role user``: the
token's name is the person). ``mien app request`` prints the lease id at once; ``--wait``
follows it until ready or a final state, renewing it meanwhile. ``mien app run`` runs a
command inside the lease's sandbox on its host: the server relays it to the host's agent
and the command's output and exit status become this command's own. ``mien app shell``
is interactive: a WebSocket to the server, which relays it to the host's
(:mod:`mien.cli.fleet.app_shell`).
"""

from __future__ import annotations

import shlex
import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from mien.cli.common import OutputFormat, done, fail, info, paragraphs
from mien.cli.fleet import common as cc
from mien.cli.fleet.app_images import images_app
from mien.cli.fleet.args import parse_duration
from mien.cli.fleet.config import Connection

if TYPE_CHECKING:
    from mien.client import Client
    from mien.protocol.broker import Lease, RunRecord

app_app = typer.Typer(
    name="app",
    no_args_is_help=True,
    help=paragraphs("""
        Application personas on demand: ask the broker for a sandboxed environment of a
        persona, run applications in it, release it.

          mien app request data-analyst --wait
          mien app run LEASE -- python3 report.py
          mien app status LEASE
          mien app release LEASE
        """),
)
# Base images for the podman driver live with the application commands.
app_app.add_typer(images_app, name="image")

LeaseArg = Annotated[str, typer.Argument(metavar="LEASE", help="Lease id.")]
ENDED = ("insufficient_resources", "failed", "released", "expired", "preempted")


def _size(n: int) -> str:
    from mien.spec.values import Size

    return str(Size(n)) if n else "-"


def _describe(lease: Lease) -> str:
    where = f" on {lease.host}" if lease.host else ""
    why = f": {lease.reason}" if lease.reason else ""
    return f"lease {lease.id} ({lease.persona}) {lease.state}{where}{why}"


@app_app.command("request")
@cc.connected
def request_cmd(
    persona: Annotated[str, typer.Argument(metavar="NAME", help="Application persona name.")],
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the lease until ready or a final state.")
    ] = False,
    priority: Annotated[
        int | None,
        typer.Option(
            "--priority", min=0, max=1000, help="Overrides resource_requirements.priority."
        ),
    ] = None,
    timeout: Annotated[
        str, typer.Option("--timeout", metavar="DURATION", help="How long --wait waits.")
    ] = "10m",
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Ask for an environment of an application persona; prints the lease id at once.

    The lease is queued, provisioning, then ready — or insufficient_resources (no host
    could ever hold it; the resource is named) or failed (with the reason). With --wait
    the progress is shown and the lease is renewed until it is ready; exit 0 when ready,
    1 otherwise. Without --wait, keep it alive with mien app renew (it expires after its
    TTL).

    Examples:

      mien app request data-analyst

      mien app request data-analyst --wait --priority 50
    """
    from mien.client import broker as ops

    limit = parse_duration(timeout, "--timeout")
    with cc.client(conn) as api:
        lease = api.send(ops.request_lease(persona, priority))
        if not wait:
            if output is OutputFormat.json:
                cc.dump(lease)
            else:
                sys.stdout.write(lease.id + "\n")
                info(_describe(lease))
            return
        final = _follow(api, lease, limit)
    if output is OutputFormat.json:
        cc.dump(final)
    else:
        sys.stdout.write(final.id + "\n")
    if final.state != "ready":
        fail(_describe(final))


def _follow(api: Client, lease: Lease, limit: float) -> Lease:
    """Show the lease's progress until ready or ended, renewing it meanwhile."""
    from mien.client import broker as ops

    shown = ""
    deadline = time.monotonic() + limit
    renew_at = time.monotonic() + lease.ttl / 3
    while True:
        if lease.state != shown:
            info(_describe(lease))
            shown = lease.state
        if lease.state == "ready" or lease.state in ENDED:
            return lease
        if time.monotonic() > deadline:
            fail(f"{_describe(lease)} after {limit:g}s; it goes on (and expires unless renewed)")
        time.sleep(0.25)
        if time.monotonic() > renew_at:
            lease = api.send(ops.renew_lease(lease.id))
            renew_at = time.monotonic() + lease.ttl / 3
        else:
            lease = api.send(ops.get_lease(lease.id))


@app_app.command("list")
@cc.connected
def list_cmd(
    everyone: Annotated[bool, typer.Option("--all", help="Everyone's leases (admin).")] = False,
    ended: Annotated[bool, typer.Option("--ended", help="Include ended leases.")] = False,
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """List your leases (open ones; --ended adds the others).

    Example:

      mien app list --ended
    """
    from mien.client import broker as ops

    with cc.client(conn) as api:
        items = api.send(ops.list_leases(everyone=everyone, ended=ended)).items
    if output is OutputFormat.json:
        cc.dump(items)
        return
    if not items:
        info("no leases: ask for one with mien app request NAME")
        return
    rows = [
        [x.id, x.persona, x.holder, x.state, x.host or "", x.priority, cc.ago(x.created_at)]
        for x in items
    ]
    cc.table(["lease", "persona", "holder", "state", "host", "priority", "asked"], rows)


@app_app.command("status")
@cc.connected
def status_cmd(
    lease_id: LeaseArg, output: cc.OutputOpt = OutputFormat.table, *, conn: Connection
) -> None:
    """Show a lease: state (and why), host, limits, usage (CPU seconds, peak memory, the
    processes launched).

    Example:

      mien app status 0b6f…
    """
    from mien.client import broker as ops

    with cc.client(conn) as api:
        x = api.send(ops.get_lease(lease_id))
    if output is OutputFormat.json:
        cc.dump(x)
        return
    lines = [
        f"lease     {x.id}",
        f"persona   {x.persona} v{x.version}",
        f"holder    {x.holder}",
        f"state     {x.state}" + (f": {x.reason}" if x.reason else ""),
        f"host      {x.host or '-'}",
        f"limits    cpu {x.limits.cpu:g}, memory {_size(x.limits.memory)}, "
        f"storage {_size(x.limits.storage)}",
        f"priority  {x.priority}" + (" (preemptible)" if x.preemptible else ""),
        f"expires   {cc.local_time(x.expires_at)} (ttl {x.ttl:g}s)",
    ]
    if x.usage:
        lines.append(
            f"usage     {x.usage.cpu_seconds:.2f} CPU seconds, peak memory "
            f"{_size(x.usage.peak_memory)}, {len(x.usage.processes)} process(es)"
        )
        if x.usage.oom_killed:
            lines.append(
                f"          memory limit hit: a process was killed (OOM) past "
                f"{_size(x.limits.memory)}"
            )
        lines += [f"          $ {shlex.join(p)}" for p in x.usage.processes[-20:]]
    sys.stdout.write("\n".join(lines) + "\n")


def _run(api: Client, lease_id: str, argv: list[str], timeout: float) -> RunRecord:
    from mien.client import broker as ops

    record = api.send(ops.run(lease_id, argv, timeout, wait=min(timeout + 5, 25)))
    while record.status not in ("done", "expired"):
        api.send(ops.renew_lease(lease_id))
        record = api.send(ops.get_run(lease_id, record.id, wait=25))
    if record.exit_status is None:
        fail(f"lease {lease_id}: {shlex.join(argv)}: {record.error or record.status}")
    return record


@app_app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@cc.connected
def run_cmd(
    lease_id: LeaseArg,
    argv: Annotated[list[str], typer.Argument(metavar="-- CMD...", help="Command and args.")],
    timeout: Annotated[
        str, typer.Option("--timeout", metavar="DURATION", help="How long it may run.")
    ] = "60s",
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Run a command inside the lease's sandbox; its output and exit status become this
    command's own (--output json: the run's record, with both outputs). The lease must be
    ready (and yours).

    Example:

      mien app run 0b6f… -- python3 -c 'import pandas; print(pandas.__version__)'
    """
    seconds = parse_duration(timeout, "--timeout")
    with cc.client(conn, timeout=seconds + 60) as api:
        record = _run(api, lease_id, list(argv), seconds)
    if output is OutputFormat.json:
        cc.dump(record)
    else:
        sys.stdout.write(record.stdout)
        sys.stderr.write(record.stderr)
    raise typer.Exit(record.exit_status or 0)


@app_app.command(
    "shell", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
@cc.connected
def shell_cmd(
    lease_id: LeaseArg,
    argv: Annotated[
        list[str] | None,
        typer.Argument(metavar="[-- CMD...]", help="Program to run (default: bash -l)."),
    ] = None,
    *,
    conn: Connection,
) -> None:
    """An interactive shell inside the lease's sandbox (or CMD on a terminal there).

    With a terminal, this one is put in raw mode and connected to a terminal allocated
    in the sandbox, of the same window size (resizes follow); it is restored when the
    shell exits. Without one (a pipe or file on standard input), the input is sent as it
    comes and its end closes the shell's input; output and errors arrive apart. Exit
    status: the shell's. The lease must be ready (and yours); an open shell keeps it
    renewed.

    Examples:

      mien app shell 0b6f…

      mien app shell 0b6f… -- top

      printf 'id\\nls /\\n' | mien app shell 0b6f…
    """
    import os
    import re

    from mien.cli.fleet import app_shell

    terminal = cc.is_tty(sys.stdin)
    term = os.environ.get("TERM") or "xterm"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}", term):
        term = "xterm"
    with cc.client(conn) as api:
        socket = app_shell.open_session(api, lease_id, list(argv or []), terminal=terminal,
                                        term=term)  # fmt: skip
        with socket:
            try:
                status = app_shell.relay(socket, terminal=terminal)
            except app_shell.ShellEnded as exc:
                fail(f"lease {lease_id}: {exc}")
    raise typer.Exit(status)


@app_app.command("renew")
@cc.connected
def renew_cmd(
    lease_id: LeaseArg, output: cc.OutputOpt = OutputFormat.table, *, conn: Connection
) -> None:
    """Keep a lease alive for another TTL."""
    from mien.client import broker as ops

    with cc.client(conn) as api:
        x = api.send(ops.renew_lease(lease_id))
    done(
        output, f"{_describe(x)}; expires {cc.local_time(x.expires_at)}", x.model_dump(mode="json")
    )


@app_app.command("release")
@cc.connected
def release_cmd(
    lease_id: LeaseArg, output: cc.OutputOpt = OutputFormat.table, *, conn: Connection
) -> None:
    """End a lease: its host destroys the sandbox and its resources are freed.

    Example:

      mien app release 0b6f…
    """
    from mien.client import broker as ops

    with cc.client(conn) as api:
        x = api.send(ops.release_lease(lease_id))
    done(output, _describe(x), x.model_dump(mode="json"))


def register(app: typer.Typer) -> None:
    app.add_typer(app_app, name="app")
