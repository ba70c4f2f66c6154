"""Where the operator CLI finds its server and token: flags, then the environment, then the
config file.

Used by every fleet command (``mien persona|instance|bind|audit|token``) through
:mod:`mien.cli.fleet.common`, and by ``mien config show|set|unset``. The file is
``$MIEN_CONFIG``, else ``$XDG_CONFIG_HOME/mien/config.toml``, else
``~/.config/mien/config.toml``::

    server = "https://mien.internal:8470"
    token = "mien_a_…"
    ca_cert = "/etc/mien/ca.pem"     # optional: a private CA
    insecure = false                 # optional: never verify (tests only)

    [profiles.staging]               # optional: mien --profile staging …
    server = "https://mien-staging.internal:8470"
    token = "mien_a_…"

Each setting is taken from the first place that has it: ``--server/--token/--ca-cert/
--insecure``, then ``MIEN_SERVER/MIEN_TOKEN/MIEN_CA_CERT/MIEN_INSECURE``, then the file
(the selected profile's table, then the top level). One exception keeps a credential from
leaking: the file's token, CA and ``insecure`` describe the file's server, so they are not
used when the server comes from a flag or the environment and names another server.

Everything but :func:`read_config` and :func:`write_config` is pure, so the rules are
unit-tested without files.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_SERVER = "MIEN_SERVER"
ENV_TOKEN = "MIEN_TOKEN"
ENV_CA_CERT = "MIEN_CA_CERT"
ENV_INSECURE = "MIEN_INSECURE"
ENV_PROFILE = "MIEN_PROFILE"
ENV_CONFIG = "MIEN_CONFIG"

KEYS: dict[str, type] = {"server": str, "token": str, "ca_cert": str, "insecure": bool}
"""The settings a config file (or one of its profiles) may hold, and their TOML types."""
TIED_TO_SERVER = ("token", "ca_cert", "insecure")
FLAGS = {"server": "--server", "token": "--token", "ca_cert": "--ca-cert", "insecure": "--insecure"}
ENVS = {"server": ENV_SERVER, "token": ENV_TOKEN, "ca_cert": ENV_CA_CERT, "insecure": ENV_INSECURE}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(Exception):
    """The configuration is missing something or cannot be read; the message says how to
    fix it."""


@dataclass(frozen=True)
class Connection:
    """What a command connects with, and where each setting came from (for messages)."""

    server: str
    token: str
    ca_cert: str | None = None
    insecure: bool = False
    origins: dict[str, str] = field(default_factory=dict)
    profile: str | None = None

    def verify(self) -> bool | str:
        """``verify`` for :class:`mien.client.Client`: a CA bundle, off, or the system CAs."""
        if self.insecure:
            return False
        return self.ca_cert or True

    def origin(self, key: str) -> str:
        return self.origins.get(key, "?")


def config_path(env: Mapping[str, str], home: Path | None = None) -> Path:
    """The config file: ``$MIEN_CONFIG``, else under ``$XDG_CONFIG_HOME`` or ``~/.config``."""
    explicit = env.get(ENV_CONFIG)
    if explicit:
        return Path(explicit).expanduser()
    xdg = env.get("XDG_CONFIG_HOME")
    # The XDG spec: a relative XDG_CONFIG_HOME is invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else (home or Path.home()) / ".config"
    return base / "mien" / "config.toml"


def normalise_server(url: str) -> str:
    """``http://host:port`` as the client will use it, for comparing two spellings."""
    text = url.strip().rstrip("/")
    if "://" not in text:
        text = "http://" + text
    if text.endswith("/api/v1"):
        text = text[: -len("/api/v1")]
    return text.lower()


def parse_config(text: str, path: str) -> dict[str, Any]:
    """A config file's content, checked: known keys with the right types, profiles as
    tables. :class:`ConfigError` names the file, and the line or key, of a problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    profiles = data.pop("profiles", {})
    _check_table(data, path, "")
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: profiles: must be a table of [profiles.NAME] tables")
    for name, table in profiles.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: profiles.{name}: must be a table ([profiles.{name}])")
        _check_table(table, path, f"profiles.{name}.")
    return {**data, "profiles": profiles}


def _check_table(table: Mapping[str, Any], path: str, prefix: str) -> None:
    for key, value in table.items():
        wanted = KEYS.get(key)
        if wanted is None:
            known = ", ".join(KEYS)
            raise ConfigError(f"{path}: {prefix}{key}: unknown setting (known: {known}, profiles)")
        if not isinstance(value, wanted):
            kind = "true or false" if wanted is bool else "a string"
            raise ConfigError(f"{path}: {prefix}{key}: must be {kind}")


def read_config(path: Path) -> dict[str, Any] | None:
    """The parsed file, or ``None`` when there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"{path}: cannot read: {reason}") from None
    return parse_config(text, str(path))


def loose_permissions(path: Path, data: Mapping[str, Any]) -> bool:
    """True when the file holds a token and others than its owner may read it."""
    has_token = "token" in data or any("token" in p for p in data.get("profiles", {}).values())
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return has_token and bool(mode & (stat.S_IRWXG | stat.S_IRWXO))


def _env_bool(value: str, name: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{name}={value!r}: write 1/true/yes or 0/false/no")


def _file_layers(
    data: Mapping[str, Any] | None, path: Path, profile: str | None, profile_origin: str
) -> list[tuple[dict[str, Any], str]]:
    """The file's tables that apply, most specific first, each with its label."""
    if data is None:
        if profile:
            raise ConfigError(
                f"{profile_origin} names profile {profile!r}, but {path} does not exist"
            )
        return []
    top = {k: v for k, v in data.items() if k != "profiles"}
    if not profile:
        return [(top, str(path))]
    profiles = data.get("profiles", {})
    if profile not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigError(
            f"{profile_origin} names profile {profile!r}, which {path} does not define "
            f"(profiles: {known})"
        )
    return [(dict(profiles[profile]), f"{path} [profiles.{profile}]"), (top, str(path))]


def collect(
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    data: Mapping[str, Any] | None,
    path: Path,
    profile: str | None = None,
) -> tuple[dict[str, Any], dict[str, str], str | None]:
    """Each setting by precedence (flags > environment > file) and where it came from,
    without requiring any: ``(values, origins, profile)``. A file setting tied to another
    server than the one in use is dropped, its origin kept as ``KEY_ignored``."""
    profile_origin = "--profile"
    if not profile and env.get(ENV_PROFILE):
        profile, profile_origin = env[ENV_PROFILE], ENV_PROFILE
    layers = _file_layers(data, path, profile, profile_origin)
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    from_layer: dict[str, int] = {}
    for key, kind in KEYS.items():
        flag = flags.get(key)
        if flag not in (None, False, ""):
            values[key], origins[key] = flag, FLAGS[key]
            continue
        raw = env.get(ENVS[key])
        if raw:
            values[key] = _env_bool(raw, ENVS[key]) if kind is bool else raw
            origins[key] = ENVS[key]
            continue
        for index, (table, label) in enumerate(layers):
            if key in table:
                values[key], origins[key] = table[key], label
                from_layer[key] = index
                break
    server = values.get("server")
    # A profile without its own server speaks to the top level's.
    top_server = layers[-1][0].get("server") if layers else None
    for key in TIED_TO_SERVER:
        if key not in from_layer or not server:
            continue
        meant_for = layers[from_layer[key]][0].get("server", top_server)
        if meant_for is None or normalise_server(meant_for) != normalise_server(server):
            del values[key]
            origins[f"{key}_ignored"] = origins.pop(key)
    return values, origins, profile


def resolve(
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    data: Mapping[str, Any] | None,
    path: Path,
    profile: str | None = None,
) -> Connection:
    """The connection settings by precedence (flags > environment > file).

    ``flags`` holds the command-line values (``None``/``False`` when not given); ``data``
    is the parsed config file (``None`` if there is none); ``profile`` comes from
    ``--profile`` (else ``MIEN_PROFILE`` is read here). :class:`ConfigError` when the
    server or the token is given nowhere.
    """
    values, origins, profile = collect(flags, env, data, path, profile)
    server = values.get("server")
    if not server:
        raise ConfigError(missing("server", path))
    token = values.get("token")
    if not token:
        message = missing("token", path)
        ignored = origins.get("token_ignored")
        if ignored:
            message += (
                f" (the token in {ignored} is for another server than {server} "
                f"from {origins['server']})"
            )
        raise ConfigError(message)
    return Connection(
        server=server,
        token=token,
        ca_cert=values.get("ca_cert"),
        insecure=bool(values.get("insecure", False)),
        origins=origins,
        profile=profile,
    )


def missing(key: str, path: Path) -> str:
    """The message for a setting given nowhere: the three ways to give it."""
    example = {"server": "URL", "token": "TOKEN"}.get(key, "VALUE")
    text = (
        f"no {key} given. Set it one of three ways: the {FLAGS[key]} {example} option; "
        f'the {ENVS[key]} environment variable; or {key} = "{example}" in {path} '
        f"(mien config set {key} {example})"
    )
    if key == "token":
        text += (
            ". The first admin token is in the server's data directory (admin.token); "
            "make others with: mien token create --role operator"
        )
    return text


def mask(token: str | None) -> str:
    """A token shown without giving it away: its kind prefix and last four characters."""
    if not token:
        return "(none)"
    if len(token) <= 12:
        return "****"
    prefix = token[:7] if token.startswith("mien_") else ""
    return f"{prefix}…{token[-4:]}"


def set_value(
    data: Mapping[str, Any] | None, key: str, value: str, profile: str | None = None
) -> dict[str, Any]:
    """A copy of the config with ``key`` set (in ``profile``'s table if given)."""
    wanted = KEYS.get(key)
    if wanted is None:
        raise ConfigError(f"{key}: unknown setting (known: {', '.join(KEYS)})")
    typed: Any = value
    if wanted is bool:
        typed = _env_bool(value, key)
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in (data or {}).items()}
    out["profiles"] = {n: dict(t) for n, t in out.get("profiles", {}).items()}
    if profile:
        out["profiles"].setdefault(profile, {})[key] = typed
    else:
        out[key] = typed
    return out


def unset_value(
    data: Mapping[str, Any] | None, key: str, profile: str | None = None
) -> tuple[dict[str, Any], bool]:
    """A copy of the config without ``key``; and whether it was there."""
    out = dict(data or {})
    profiles = {n: dict(t) for n, t in out.get("profiles", {}).items()}
    table = profiles.get(profile, {}) if profile else out
    found = key in table
    table.pop(key, None)
    out["profiles"] = profiles
    return out, found


def write_config(path: Path, data: Mapping[str, Any]) -> None:
    """Write the config (mode 0600: it may hold a token), replacing the file atomically."""
    import tomli_w

    body = {k: v for k, v in data.items() if k != "profiles"}
    profiles = {n: t for n, t in data.get("profiles", {}).items() if t}
    if profiles:
        body["profiles"] = profiles
    text = tomli_w.dumps(body)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    tmp.replace(path)
