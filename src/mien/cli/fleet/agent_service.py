"""``mien agent serve-socket`` and ``mien agent install-service``: the agent as a machine's
service.

``serve-socket`` serves the local API (:mod:`mien.agent.local_api`) on a machine that does
not follow a fleet, so people can switch personas without root. ``install-service`` writes
the systemd unit that runs ``mien agent run`` at boot (the cloud-init example in
docs/install.md calls it) and enables it where systemd is running.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import typer

from mien.cli import common

UNIT_NAME = "mien-agent.service"
UNIT_DIR = Path("/etc/systemd/system")


def mien_executable() -> str:
    """The ``mien`` the unit should start: the one on PATH, else the running one."""
    found = shutil.which("mien")
    if found:
        return str(Path(found).absolute())
    return str(Path(sys.argv[0]).absolute())


def unit_text(root: Path, executable: str) -> str:
    """The unit. Hardened only where that cannot stop a root agent that writes /etc, users'
    homes and packages (no ProtectSystem/ProtectHome, setuid files allowed: apt installs
    them), and runs persona scripts."""
    exec_start = " ".join(shlex.quote(a) for a in [executable, "agent", "run", "--root", str(root)])
    runtime = "RuntimeDirectory=mien\nRuntimeDirectoryMode=0755\n" if str(root) == "/" else ""
    return f"""\
[Unit]
Description=mien agent: applies this machine's persona and follows its fleet server
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart={exec_start}
# Exit status 1 means the server refused this machine's credential: enroll again.
Restart=on-failure
RestartSec=5s
RestartPreventExitStatus=1 2
# An apply in progress finishes before the agent stops.
TimeoutStopSec=120
KillMode=mixed
{runtime}UMask=0022
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictRealtime=yes
LockPersonality=yes
SystemCallArchitectures=native
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK

[Install]
WantedBy=multi-user.target
"""


def systemd_running() -> bool:
    """Whether systemd is PID 1 here (what sd_booted(3) checks)."""
    return Path("/run/systemd/system").is_dir()


def register_on(agent_app: typer.Typer) -> None:
    @agent_app.command("serve-socket")
    def serve_socket(
        root: Path = typer.Option(Path("/"), "--root", help="Machine root the agent manages."),
        user: str | None = typer.Option(
            None, "--user", "-u", help="The persona user (default: the last apply's)."
        ),
    ) -> None:
        """Serve the local API (ROOT/run/mien/agent.sock) on a machine without a fleet
        agent, so `mien switch` and `mien customize` work without root.

        Who calls is read from the kernel (SO_PEERCRED). A person may switch to the
        personas in ROOT/etc/mien/personas whose access_controls.users lists them or
        one of their groups (group:NAME); root to all. Stops on SIGTERM/SIGINT.
        """
        from mien.agent.enrollment import CREDENTIALS
        from mien.agent.local_api import LocalApi
        from mien.agent.switchboard import Switchboard

        absolute = root.absolute()
        if not absolute.is_dir():
            common.fail(f"--root {root}: not a directory", 2)
        if (absolute / CREDENTIALS).exists():
            common.fail(
                f"{absolute} is enrolled in a fleet: `mien agent run --root {root}` serves "
                "the socket there (switches go through the server)",
                2,
            )
        try:
            api = LocalApi(absolute, Switchboard(absolute, user=user))
        except OSError as exc:
            common.fail(f"cannot serve the socket: {exc}")

        def stop(_signum: int, _frame: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        common.info(f"serving {api.path} (stop with Ctrl-C or SIGTERM)")
        try:
            api.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            api.server.server_close()
            if api.path.is_socket():
                api.path.unlink()
        common.info("stopped")

    @agent_app.command("install-service")
    def install_service(
        root: Path = typer.Option(Path("/"), "--root", help="Machine root the agent manages."),
        print_only: bool = typer.Option(
            False, "--print", help="Print the unit and change nothing."
        ),
        output: common.OutputFormat = typer.Option(
            common.OutputFormat.table, "--output", help="table for people, json for scripts."
        ),
    ) -> None:
        """Install mien-agent.service (systemd) that runs `mien agent run` at boot, and
        start it.

        Where systemd is not running (a container, a chroot), exits 2 and prints the unit
        and what to run. Enroll first: `mien agent enroll --server URL --token TOKEN`.
        """
        text = unit_text(root.absolute(), mien_executable())
        path = UNIT_DIR / UNIT_NAME
        if print_only:
            if output is common.OutputFormat.json:
                common.print_json({"unit": text, "path": str(path), "installed": False})
            else:
                sys.stdout.write(text)
            return
        if not systemd_running():
            if output is common.OutputFormat.json:
                common.print_json({"unit": text, "path": str(path), "installed": False})
            else:
                sys.stdout.write(text)
            common.error(
                "systemd is not running here (no /run/systemd/system): nothing installed. "
                f"Where it runs, save the unit above as {UNIT_DIR / UNIT_NAME} and run "
                f"`systemctl daemon-reload && systemctl enable --now {UNIT_NAME}`; "
                f"elsewhere run `mien agent run --root {root}` under your supervisor.",
                status=2,
            )
            raise typer.Exit(2)
        if os.geteuid() != 0:
            common.fail("installing a system service needs root (or use --print)", 2)
        tmp = path.with_name(f".{UNIT_NAME}.tmp")
        tmp.write_text(text)
        tmp.chmod(0o644)
        tmp.replace(path)
        for argv in (["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", UNIT_NAME]):
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                common.fail(f"{' '.join(argv)} failed: {done.stderr.strip()}")
        common.done(
            output,
            f"installed {path}; started {UNIT_NAME} (`systemctl status {UNIT_NAME}`)",
            {"unit": text, "path": str(path), "installed": True},
        )
