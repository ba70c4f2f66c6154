"""``mien provider``: the providers the server calls for what a machine cannot do to itself
(resize its VM through libvirt, or a signed webhook to the operator's automation), and
``provider_calls_table`` for ``mien instance show``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mien.cli.common import OutputFormat, done, fail, info, paragraphs
from mien.cli.fleet import common as cc
from mien.cli.fleet.config import Connection
from mien.protocol.providers import ProviderCall

provider_app = typer.Typer(
    name="provider",
    no_args_is_help=True,
    help=paragraphs("""
        Providers: what the server asks of the machines' infrastructure (resize a VM).

          mien provider push hooks.yaml --secret-file hooks.key
          mien provider list
          mien provider show hooks
        """),
)


def read_document(path: Path, secret_file: Path | None) -> tuple[str, dict[str, Any]]:
    """(name, body) of a provider file; a bad file fails naming it."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        fail(f"{path}: {exc.strerror or exc}", 2)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        fail(f"{path}{where}: not YAML: {getattr(exc, 'problem', exc)}", 2)
    if not isinstance(raw, dict):
        fail(f"{path}: a provider document is a mapping (name, driver, selector, config)", 2)
    body = dict(raw)
    name = body.pop("name", None)
    if not isinstance(name, str) or not name:
        fail(f"{path}: name: give the provider a name", 2)
    if secret_file is not None:
        try:
            body["secret"] = secret_file.read_text().strip()
        except OSError as exc:
            fail(f"--secret-file {secret_file}: {exc.strerror or exc}", 2)
    return name, body


@provider_app.command("push")
@cc.connected
def push_cmd(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="A provider document (YAML or JSON).")
    ],
    secret_file: Annotated[
        Path | None,
        typer.Option("--secret-file", metavar="PATH", help="Read the webhook's secret from here."),
    ] = None,
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Declare or replace a provider from FILE. Needs an admin token. A secret left out
    keeps the stored one; it is never shown again.

    Example:

      mien provider push hooks.yaml --secret-file hooks.key
    """
    from mien.client import providers as ops

    name, body = read_document(file, secret_file)
    with cc.client(conn) as api:
        view = api.send(ops.put_provider(name, body))
    done(
        output,
        f"provider {view.name} v{view.version} ({view.driver})",
        view.model_dump(mode="json"),
    )


@provider_app.command("list")
@cc.connected
def list_cmd(output: cc.OutputOpt = OutputFormat.table, *, conn: Connection) -> None:
    """List the declared providers."""
    from mien.client import providers as ops

    with cc.client(conn) as api:
        items = api.send(ops.list_providers()).items
    if output is OutputFormat.json:
        cc.dump(items)
        return
    if not items:
        info("no providers: declare one with mien provider push FILE")
        return
    cc.table(
        ["provider", "driver", "serves", "version", "updated"],
        [
            [
                p.name,
                p.driver,
                cc.selector_text(p.selector) or "every instance",
                p.version,
                cc.local_time(p.updated_at),
            ]
            for p in items
        ],
    )


@provider_app.command("show")
@cc.connected
def show_cmd(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Provider name.")],
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Show one provider's declaration (its secret only as set or not)."""
    from mien.client import providers as ops

    with cc.client(conn) as api:
        view = api.send(ops.get_provider(name))
    if output is OutputFormat.json:
        cc.dump(view)
        return
    cc.table(
        ["", ""],
        [
            ["driver", view.driver],
            ["serves", cc.selector_text(view.selector) or "every instance"],
            *[[f"config.{k}", v] for k, v in sorted(view.config.items())],
            ["secret", "set" if view.has_secret else "none"],
            ["version", f"{view.version} ({cc.local_time(view.updated_at)} by {view.updated_by})"],
            ["description", view.description or ""],
        ],
        title=f"provider {view.name}",
    )


@provider_app.command("remove")
@cc.connected
def remove_cmd(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Provider name.")],
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Remove a provider. Its calls still open then fail (nobody to call)."""
    from mien.client import providers as ops

    with cc.client(conn) as api:
        api.send(ops.delete_provider(name))
    done(output, f"provider {name} removed", {"provider": name, "removed": True})


def provider_calls_table(calls: list[ProviderCall]) -> None:
    """The provider calls of one instance, newest first (``mien instance show``)."""
    cc.table(
        ["provider call", "provider", "asked", "status", "attempts", "outcome"],
        [
            [
                cc.local_time(c.created_at),
                c.provider,
                f"{c.kind} {' '.join(f'{k}={v}' for k, v in c.params.items())}",
                c.status,
                c.attempts,
                _outcome(c),
            ]
            for c in calls
        ],
        title="provider calls",
    )


def _outcome(call: ProviderCall) -> str:
    if call.status == "failing":
        return f"{call.last_error}; next attempt {cc.local_time(call.next_attempt_at)}"
    if call.status in ("failed", "refused"):
        return call.last_error or ""
    if call.status == "succeeded":
        return ", ".join(f"{k}={v}" for k, v in (call.result or {}).items())
    return call.reason


def register(app: typer.Typer) -> None:
    app.add_typer(provider_app, name="provider")
