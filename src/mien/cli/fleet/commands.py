"""The operator side of ``mien``: the fleet commands that talk to a ``mien server``, and
``mien config`` for where they find it.

:func:`register` (called by :mod:`mien.cli.main`) adds ``persona``, ``instance``, ``bind``,
``audit``, ``token`` and ``config``; each group lives in its own module
(:mod:`~mien.cli.fleet.personas`, :mod:`~mien.cli.fleet.instances` and
:mod:`~mien.cli.fleet.remote`, :mod:`~mien.cli.fleet.bindings`,
:mod:`~mien.cli.fleet.admin`). Server and token come from ``--server/--token``, else
``MIEN_SERVER/MIEN_TOKEN``, else the config file (:mod:`mien.cli.fleet.config`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from mien.cli.common import OutputFormat, done, fail, info, paragraphs, print_json
from mien.cli.fleet import common as cc
from mien.cli.fleet import config

config_app = typer.Typer(
    name="config",
    no_args_is_help=True,
    help=paragraphs(f"""
        Where the fleet commands find their server and token.

        Each setting comes from the first of: the command's flags (--server, --token,
        --ca-cert, --insecure), the environment (${config.ENV_SERVER}, ${config.ENV_TOKEN},
        ${config.ENV_CA_CERT}, ${config.ENV_INSECURE}), the config file
        ($XDG_CONFIG_HOME/mien/config.toml, else ~/.config/mien/config.toml; ${config.ENV_CONFIG}
        names another). A file may hold profiles ([profiles.NAME] tables) chosen with --profile
        or ${config.ENV_PROFILE}. The file's token is used only for the file's server.

          mien config set server https://mien.internal:8470
          mien config set token "$(cat admin.token)"
          mien config set --profile staging server https://mien-staging.internal:8470
          mien config show --check
        """),
)

ProfileOpt = Annotated[
    str | None,
    typer.Option("--profile", metavar="NAME", help="Change \\[profiles.NAME] instead of the top."),
]


def _load() -> tuple[Path, dict[str, Any] | None]:
    path = config.config_path(os.environ)
    try:
        return path, config.read_config(path)
    except config.ConfigError as exc:
        fail(str(exc), 2)


@config_app.command("show")
@cc.helpful
def show_cmd(
    profile: Annotated[
        str | None, typer.Option("--profile", metavar="NAME", help="Show with this profile.")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Also ask the server who the token is.")
    ] = False,
    output: cc.OutputOpt = OutputFormat.table,
) -> None:
    """Show the settings the fleet commands would use now, and where each comes from
    (the token masked).

    Example:

      mien config show --check
    """
    path, data = _load()
    try:
        values, origins, chosen = config.collect({}, os.environ, data, path, profile)
    except config.ConfigError as exc:
        fail(str(exc), 2)
    shown = {
        key: config.mask(values.get(key)) if key == "token" else values.get(key)
        for key in config.KEYS
    }
    if output is OutputFormat.json:
        print_json(
            {
                "file": str(path),
                "file_exists": data is not None,
                "profile": chosen,
                "settings": {k: {"value": v, "from": origins.get(k)} for k, v in shown.items()},
            }
        )
    else:
        info(f"config file: {path}" + ("" if data is not None else " (does not exist)"))
        if chosen:
            info(f"profile: {chosen}")
        rows = []
        for key in config.KEYS:
            origin = origins.get(key) or (
                f"ignored: {origins[key + '_ignored']} is for another server"
                if key + "_ignored" in origins
                else "-"
            )
            value = shown[key]
            rows.append([key, "-" if value is None else value, origin])
        cc.table(["setting", "value", "from"], rows)
    if check:
        conn = cc.resolve_connection({"profile": profile})
        with cc.client(conn, timeout=15) as api:
            who = api.whoami()
        info(f"{conn.server}: token {who.name!r}, role {who.role}")


@config_app.command("set")
@cc.helpful
def set_cmd(
    key: Annotated[str, typer.Argument(metavar="KEY", help="server, token, ca_cert or insecure.")],
    value: Annotated[str, typer.Argument(metavar="VALUE")],
    profile: ProfileOpt = None,
    output: cc.OutputOpt = OutputFormat.table,
) -> None:
    """Write a setting to the config file (created 0600: it may hold a token). Comments in
    the file are not kept.

    Examples:

      mien config set server https://mien.internal:8470

      mien config set token "$(cat /var/lib/mien/admin.token)"

      mien config set --profile lab insecure true
    """
    path, data = _load()
    try:
        updated = config.set_value(data, key, value, profile)
        config.write_config(path, updated)
    except config.ConfigError as exc:
        fail(str(exc), 2)
    except OSError as exc:
        fail(f"{path}: cannot write: {exc.strerror or exc}")
    shown = config.mask(value) if key == "token" else value
    where = f" [profiles.{profile}]" if profile else ""
    done(
        output,
        f"{path}{where}: {key} = {shown}",
        {"file": str(path), "profile": profile, "key": key, "value": shown},
    )


@config_app.command("unset")
@cc.helpful
def unset_cmd(
    key: Annotated[str, typer.Argument(metavar="KEY")],
    profile: ProfileOpt = None,
    output: cc.OutputOpt = OutputFormat.table,
) -> None:
    """Remove a setting from the config file.

    Example:

      mien config unset token
    """
    path, data = _load()
    if data is None:
        fail(f"{path} does not exist")
    updated, found = config.unset_value(data, key, profile)
    if not found:
        where = f" [profiles.{profile}]" if profile else ""
        fail(f"{path}{where}: no {key} to remove")
    try:
        config.write_config(path, updated)
    except OSError as exc:
        fail(f"{path}: cannot write: {exc.strerror or exc}")
    done(output, f"{path}: removed {key}", {"file": str(path), "profile": profile, "removed": key})


def register(app: typer.Typer) -> None:
    from mien.cli.fleet import admin, bindings, effective, instances, personas, push, remote

    push.register(personas.app)
    effective.register(instances.app)
    remote.register(instances.app)
    from mien.cli.fleet import effectiveness, telemetry

    telemetry.register(instances.app)
    effectiveness.register(personas.app)
    app.add_typer(personas.app, name="persona")
    app.add_typer(instances.app, name="instance")
    app.add_typer(bindings.bind_app, name="bind")
    app.add_typer(admin.audit_app, name="audit")
    app.add_typer(admin.token_app, name="token")
    app.add_typer(config_app, name="config")
