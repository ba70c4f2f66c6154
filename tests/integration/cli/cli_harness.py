"""Running the real ``mien`` command against a test server with a clean environment:
no ``MIEN_*`` variable and no config file of the person running the tests leaks in."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from server_harness import ServerProcess

from tests.support import mien_command


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def out(self) -> str:
        return self.stdout + self.stderr


class Cli:
    """The real ``mien`` against one server, with a private home and config directory."""

    def __init__(self, server: ServerProcess, home: Path) -> None:
        self.server = server
        self.home = home
        self.config_dir = home / ".config"
        self.config_dir.mkdir(parents=True, exist_ok=True)

    def env(self, token: str | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MIEN_")}
        env.update(
            {
                "HOME": str(self.home),
                "XDG_CONFIG_HOME": str(self.config_dir),
                "NO_COLOR": "1",
                "COLUMNS": "250",
                "MIEN_SERVER": self.server.url,
            }
        )
        if token:
            env["MIEN_TOKEN"] = token
        env.update(extra or {})
        return {k: v for k, v in env.items() if v != ""}

    def __call__(
        self,
        *args: str | os.PathLike[str],
        token: str | None = "admin",
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
    ) -> Result:
        """Run ``mien ARGS``; ``token="admin"`` means the server's admin token, ``None``
        none at all; ``env`` adds variables (an empty value removes one)."""
        secret = self.server.admin_token if token == "admin" else token
        proc = subprocess.run(
            [*mien_command(), *map(str, args)],
            check=False,
            capture_output=True,
            text=True,
            env=self.env(secret, env),
            timeout=timeout,
            cwd=self.home,
        )
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        assert "Traceback" not in result.out, result.out
        return result
