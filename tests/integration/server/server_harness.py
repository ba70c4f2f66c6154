"""Real server processes and simulated agents for the server's integration tests.

:class:`ServerProcess` runs ``mien server`` as a child process on a free loopback port and
talks to it over real HTTP. :class:`SimAgent` speaks the agent protocol through
``mien.client`` exactly as the real agent will: enroll, long-poll, "apply" (record the
document; fail on request), report, and run remote commands through the persona's
routing table (restricted → refused with 126, overridden → the replacement runs, else the
command itself runs as a real process).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from mien.client import Client, RetryableError, agent_ops, backoff
from mien.client._http import AsyncSession
from mien.client.agent_ops import ReportFields
from mien.protocol import DesiredState

HERE = Path(__file__).resolve()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    """One ``mien server`` replica in a child process."""

    data_dir: Path
    db_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    tls: tuple[Path, Path] | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def admin_token(self) -> str:
        return (self.data_dir / "admin.token").read_text().strip()

    def start(self, timeout: float = 60.0) -> ServerProcess:
        self.port = self.port or free_port()
        args = [
            sys.executable,
            "-m",
            "mien.cli.main",
            "server",
            "--port",
            str(self.port),
            "--data",
            str(self.data_dir),
            "--log-level",
            "warning",
        ]
        if self.db_url:
            args += ["--db", self.db_url]
        if self.tls:
            args += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        env = {**os.environ, "MIEN_SERVER_HEARTBEAT_FLUSH_INTERVAL": "0.5", **self.env}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"server-{self.port}.log"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        verify: Any = str(self.tls[0]) if self.tls else True
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mien server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                ctx = __import__("ssl").create_default_context(cafile=verify) if self.tls else True
                r = httpx.get(f"{self.url}/healthz", timeout=2, verify=ctx)
                if r.status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"mien server did not become healthy:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return (
            self.log_path.read_text(errors="replace")
            if self.log_path and self.log_path.exists()
            else ""
        )

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: the exit status (0 for a graceful stop)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def client(self, token: str | None = None) -> Client:
        verify: Any = str(self.tls[0]) if self.tls else True
        return Client(self.url, token if token is not None else self.admin_token, verify=verify)


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


@dataclass
class SimAgent:
    """A simulated agent speaking the real protocol over real HTTP."""

    server: str
    token: str | None = None
    instance_id: str | None = None
    wait: float = 10.0
    fail_with: Callable[[dict[str, Any]], str | None] | None = None
    known: str | None = None
    applied: DesiredState | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    received: list[DesiredState] = field(default_factory=list)
    commands_run: list[str] = field(default_factory=list)

    async def enroll(
        self, enroll_token: str, tags: dict[str, str] | None = None, **kw: Any
    ) -> None:
        async with AsyncSession(self.server) as api:
            enrolled = await api.send(agent_ops.enroll(enroll_token, tags=tags, **kw))
        self.token, self.instance_id = enrolled.token, enrolled.instance_id

    async def run(self, stop: asyncio.Event) -> None:
        attempt = 0
        async with AsyncSession(self.server, self.token) as api:
            while not stop.is_set():
                poll = asyncio.ensure_future(api.send(agent_ops.desired(self.known, self.wait)))
                stopped = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait({poll, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if poll not in done:
                    poll.cancel()
                    with contextlib.suppress(BaseException):
                        await poll
                    return
                stopped.cancel()
                try:
                    desired = poll.result()
                except RetryableError as exc:
                    attempt += 1
                    await asyncio.sleep(min(backoff(attempt, base=0.05, cap=0.5), 0.5))
                    del exc
                    continue
                attempt = 0
                if desired is None:
                    continue
                self.received.append(desired)
                await self.handle(api, desired)

    async def handle(self, api: AsyncSession, desired: DesiredState) -> None:
        for command in desired.commands:
            status, out, err, refused = await self.execute(
                command.command, command.args, command.timeout
            )
            await api.send(agent_ops.command_result(command.id, status, out, err, refused=refused))
        if desired.document is not None and (
            self.applied is None or self.applied.hash != desired.hash
        ):
            # As the real agent: "applying" and "failed" name what still runs.
            running = self.applied
            still = ReportFields(
                activation_id=desired.activation_id,
                persona=running.persona if running else None,
                version=running.version if running else None,
                hash=running.hash if running else None,
            )
            await api.send(agent_ops.report("applying", **still))
            error = self.fail_with(desired.document) if self.fail_with else None
            if error:
                await api.send(agent_ops.report("failed", **still, error=error))
            else:
                self.applied = desired
                self.history.append(
                    {"persona": desired.persona, "hash": desired.hash, "action": "activate"}
                )
                await api.send(
                    agent_ops.report(
                        "applied",
                        activation_id=desired.activation_id,
                        persona=desired.persona,
                        version=desired.version,
                        hash=desired.hash,
                        history=self.history,
                    )
                )
        elif desired.document is not None and desired.activation_id:
            assert self.applied is not None
            await api.send(
                agent_ops.report(
                    "applied",
                    activation_id=desired.activation_id,
                    persona=desired.persona,
                    version=desired.version,
                    hash=self.applied.hash,
                )
            )
        self.known = desired.state

    async def execute(
        self, command: str, args: list[str], timeout: float
    ) -> tuple[int, str, str, bool]:
        """Seed 001's execute_command: restricted → refused, overridden → replacement."""
        self.commands_run.append(command)
        doc = self.applied.document if self.applied and self.applied.document else {}
        for pattern in doc.get("restricted_commands", []):
            if fnmatch.fnmatchcase(command, pattern):
                persona = doc.get("name")
                return (
                    126,
                    "",
                    f"mien: {command}: refused by persona {persona!r} (restricted)\n",
                    True,
                )
        override = doc.get("command_overrides", {}).get(command)
        if override and override.startswith("#!"):
            with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as fh:
                fh.write(override)
            os.chmod(fh.name, 0o755)
            argv = [fh.name, *args]
        elif override:
            argv = [*shlex.split(override), *args]
        else:
            argv = [command, *args]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
        except FileNotFoundError:
            return 127, "", f"mien: {command}: command not found\n", False
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        return (
            proc.returncode or 0,
            out.decode(errors="replace"),
            err.decode(errors="replace"),
            False,
        )


class AgentFleet:
    """Many :class:`SimAgent` running in one event loop in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.agents: list[SimAgent] = []
        self._stop: asyncio.Event | None = None
        self._tasks: list[asyncio.Future[None]] = []
        import threading

        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._stop = self.call(self._make_event())

    @staticmethod
    async def _make_event() -> asyncio.Event:
        return asyncio.Event()

    def call(self, coro: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, agent: SimAgent) -> SimAgent:
        assert self._stop is not None
        self.agents.append(agent)
        self._tasks.append(asyncio.run_coroutine_threadsafe(agent.run(self._stop), self.loop))
        return agent

    def close(self) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        for task in self._tasks:
            with contextlib.suppress(Exception):
                task.result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
