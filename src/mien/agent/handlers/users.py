"""The persona user (``--user``): whose shell, home and dotfiles a persona sets, read from
the root's own ``etc/passwd`` (a directory root is another machine, not this one).

Used by the engine (to build each apply's :class:`~mien.agent.handlers.base.Context`) and by
handlers that set a file's owner by name (:mod:`mien.agent.handlers.config_files`).
"""

from __future__ import annotations

import pwd
from dataclasses import dataclass
from pathlib import Path

from mien.agent.handlers.errors import HandlerError


@dataclass(frozen=True, slots=True)
class UserInfo:
    """The persona user (``--user``): whose shell, home and dotfiles a persona sets."""

    name: str
    uid: int
    gid: int
    home: str  # absolute path on the machine, e.g. /home/alice (not prefixed by root)
    shell: str


def lookup_user(root: Path, name: str) -> UserInfo:
    """The persona user from ``ROOT/etc/passwd`` (or the machine's database for ``/``)."""
    passwd = root / "etc" / "passwd"
    if passwd.is_file():
        for line in passwd.read_text(errors="replace").splitlines():
            fields = line.split(":")
            if len(fields) >= 7 and fields[0] == name:
                return UserInfo(name, int(fields[2]), int(fields[3]), fields[5], fields[6])
    if root == Path("/"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            pass
        else:
            return UserInfo(name, entry.pw_uid, entry.pw_gid, entry.pw_dir, entry.pw_shell)
    raise HandlerError(f"user {name!r} is not in {passwd}: pass an existing user with --user")
