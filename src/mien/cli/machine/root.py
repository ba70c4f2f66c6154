"""``mien root init DIR --user NAME``: make a directory a machine root mien can manage.

For trying mien without touching the machine (the README's steps) and for building images:
``--root DIR`` needs what a persona's handlers read on a real system — ``etc/passwd`` with
the persona user, ``etc/group``, ``etc/shells`` and the user's home. This writes what is
missing and leaves everything that is there alone, so it is safe to run again, and on a
half-built image tree. It never writes through a symbolic link.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import typer

from mien.cli import common
from mien.cli.common import OutputFormat

NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# The shells a persona may ask for; one not installed in the root is refused at plan time
# unless the persona installs it.
SHELLS = (
    "# /etc/shells: valid login shells\n/bin/sh\n/bin/bash\n/usr/bin/bash\n"
    "/bin/zsh\n/usr/bin/zsh\n/usr/bin/fish\n"
)
FIRST_UID = 1000

root_app = typer.Typer(
    name="root",
    help="Machine roots in a directory: for trying mien and for building images.",
    no_args_is_help=True,
)


@root_app.command("init")
def init_cmd(
    directory: Path = typer.Argument(
        ..., metavar="DIR", help="The directory (created if missing)."
    ),
    user: str = typer.Option(..., "--user", "-u", help="The persona user to create in it."),
    shell: str = typer.Option("/bin/bash", "--shell", help="The user's login shell."),
    output: OutputFormat = typer.Option(
        OutputFormat.table, "--output", help="table for people, json for scripts."
    ),
) -> None:
    """Make DIR a minimal machine root: etc/passwd, etc/group and etc/shells with the
    persona user, and the user's home. Files already there are kept; a missing user is added.

    Example: mien root init /srv/vm1 --user alice && mien apply developer --root /srv/vm1 --user alice --yes
    """
    if not NAME.match(user):
        common.fail(f"--user {user!r}: not a user name (lower-case letters, digits, _ and -)", 2)
    if not shell.startswith("/") or ":" in shell or "\n" in shell:
        common.fail(f"--shell {shell!r}: not an absolute path", 2)
    root = directory.absolute()
    if root.resolve() == Path("/"):
        common.fail("DIR is the machine's own root: its users exist already; use --root /", 2)
    try:
        result = _init(root, user, shell)
    except (OSError, ValueError) as exc:
        common.fail(f"{directory}: {exc}")
    if output is OutputFormat.json:
        common.print_json(result)
        return
    for path in result["created"]:
        common.info(f"created {path}")
    for path in result["updated"]:
        common.info(f"updated {path}")
    common.info(
        f"{root} is a machine root with user {user} (uid {result['uid']}, home "
        f"{result['home']}); use it with --root {directory}"
    )


def _init(root: Path, user: str, shell: str) -> dict[str, Any]:
    created: list[str] = []
    updated: list[str] = []
    if not root.exists() and not root.is_symlink():
        root.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    for part in (root, root / "etc", root / "home"):
        _directory(part, 0o755, created)
    passwd = _read(root / "etc" / "passwd")
    group = _read(root / "etc" / "group")
    users = {f[0]: f for f in (line.split(":") for line in passwd.splitlines()) if len(f) >= 7}
    groups = {f[0]: f for f in (line.split(":") for line in group.splitlines()) if len(f) >= 3}
    if user in users:
        uid, gid, home = int(users[user][2]), int(users[user][3]), users[user][5]
    else:
        taken = {int(f[2]) for f in users.values() if f[2].isdigit()}
        taken |= {int(f[2]) for f in groups.values() if f[2].isdigit()}
        uid = gid = next(n for n in range(FIRST_UID, 60000) if n not in taken)
        home = f"/home/{user}"
    lines = [] if passwd else ["root:x:0:0:root:/root:/bin/bash"]
    if user not in users:
        lines.append(f"{user}:x:{uid}:{gid}:{user}:{home}:{shell}")
    _append(root / "etc" / "passwd", passwd, lines, created, updated)
    glines = [] if group else ["root:x:0:"]
    if not any(int(f[2]) == gid for f in groups.values() if f[2].isdigit()):
        glines.append(f"{user}:x:{gid}:")
    _append(root / "etc" / "group", group, glines, created, updated)
    shells = _read(root / "etc" / "shells")
    listed = set(shells.split())
    _append(
        root / "etc" / "shells",
        shells,
        ([] if shells else SHELLS.splitlines())
        + ([shell] if shell not in listed | set(SHELLS.split()) else []),
        created,
        updated,
    )
    home_dir = root / home.lstrip("/")
    if _directory(home_dir, 0o750, created) and os.geteuid() == 0:
        os.chown(home_dir, uid, gid, follow_symlinks=False)
    profile = home_dir / ".profile"
    if not profile.exists() and not profile.is_symlink():
        _append(profile, "", ["# ~/.profile"], created, updated)
        if os.geteuid() == 0:
            os.chown(profile, uid, gid, follow_symlinks=False)
    return {
        "root": str(root),
        "user": user,
        "uid": uid,
        "gid": gid,
        "home": home,
        "created": created,
        "updated": updated,
    }


def _directory(path: Path, mode: int, created: list[str]) -> bool:
    if path.is_symlink():
        raise ValueError(f"{path} is a symbolic link; refusing to write through it")
    if path.is_dir():
        return False
    path.mkdir(mode=mode)
    created.append(str(path))
    return True


def _read(path: Path, limit: int = 4 << 20) -> str:
    if path.is_symlink():
        raise ValueError(f"{path} is a symbolic link; refusing to write through it")
    if not path.exists():
        return ""
    with path.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path} is larger than {limit} bytes")
    return data.decode("utf-8", errors="replace")


def _append(path: Path, old: str, lines: list[str], created: list[str], updated: list[str]) -> None:
    if not lines:
        return
    text = ("" if not old or old.endswith("\n") else "\n") + "".join(f"{line}\n" for line in lines)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "a") as f:
        f.write(text)
    (updated if old else created).append(str(path))


def register(app: typer.Typer) -> None:
    app.add_typer(root_app)
