"""The sandbox host's side of the broker: what ``mien agent run --sandbox-host`` adds.

:class:`SandboxHost` runs beside the agent's own loop (a thread) and speaks the broker's
host protocol with the instance's own token (:mod:`mien.client.broker`):

* it offers the machine's capacity (CPU, memory, storage from psutil, or what it is told)
  every ``offer_interval`` seconds — the offer is its heartbeat;
* it asks for work every ``poll_interval`` seconds: leases to build (it calls the
  driver's ``provision`` and reports ready, or failed with the reason, destroying what was
  half built), leases to destroy (released, expired, preempted), commands to run inside a
  lease (exit status and output go back to the server);
* it reports each lease's usage (CPU seconds, peak memory, the processes launched with their
  commands) every ``usage_interval`` seconds;
* it serves ``mien app shell``: each session the server hands out gets a thread that
  dials the server's relay and runs the program on a terminal in the lease
  (:mod:`mien.agent.sandbox_shell`);
* it reclaims a lease idle for ``idle_timeout`` seconds (no command run), reporting it
  released with the reason;
* it destroys any environment it holds that the server no longer lists as live (a lease
  that moved while this host was unreachable, or one an earlier run of the agent left:
  those the driver can list are adopted at start).

The drivers (:class:`Driver`) live in :mod:`mien.agent.sandbox`; this module only needs the
interface, so it can be driven by any of them.
"""

from __future__ import annotations

import inspect
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from mien.client import Client, ClientError
from mien.client import broker as ops
from mien.protocol.broker import HostLease, HostRun, HostShell, Limits
from mien.spec.models import APPLICATION_ENV_KEY, APPLICATION_ENV_PATH

OUTPUT_CAP = 256 * 1024
"""Most bytes of a command's stdout (and of its stderr) sent back; the server caps too."""


class Driver(Protocol):
    """What a sandbox driver offers (``local``: bubblewrap + cgroups; ``podman``)."""

    def provision(self, spec: Any) -> Any: ...

    def run(self, handle: Any, argv: list[str], **options: Any) -> Any: ...

    def usage(self, handle: Any) -> Any: ...

    def destroy(self, handle: Any) -> None: ...


@dataclass(frozen=True)
class LeaseSpec:
    """What to build for a lease: its id, the composed persona, the limits it holds."""

    lease_id: str
    persona: str
    document: dict[str, Any]
    limits: Limits


def default_spec(lease: HostLease) -> Any:
    """The lease as the drivers take it (:func:`mien.agent.sandbox.base.as_spec` reads
    ``lease_id`` and ``document``).

    The server holds the persona in canonical form, where the flat
    ``application_configuration`` settings are one env-file entry; they are also handed
    over flat again, so that the drivers load them into the applications' environment."""
    document = dict(lease.document)
    config = document.get("application_configuration")
    entry = config.get(APPLICATION_ENV_KEY) if isinstance(config, dict) else None
    if (
        isinstance(config, dict)
        and isinstance(entry, dict)
        and entry.get("path") == APPLICATION_ENV_PATH
        and isinstance(entry.get("values"), dict)
    ):
        flat = {k: v for k, v in entry["values"].items() if k not in config}
        document["application_configuration"] = {**config, **flat}
    return LeaseSpec(lease.id, lease.persona, document, lease.limits)


@dataclass
class Held:
    """A lease this host holds."""

    lease_id: str
    handle: Any = None
    ready: bool = False
    last_active: float = field(default_factory=time.monotonic)
    launched: list[list[str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def capacity(workdir: Path) -> tuple[float, int, int]:
    """This machine's CPU cores, memory and free storage under ``workdir`` (measured on
    its nearest existing parent: the directory is made by the first sandbox, not before)."""
    import psutil

    while not workdir.is_dir() and workdir.parent != workdir:
        workdir = workdir.parent
    cores = float(len(os.sched_getaffinity(0)) or psutil.cpu_count() or 1)
    return cores, int(psutil.virtual_memory().total), int(psutil.disk_usage(str(workdir)).free)


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _text(data: bytes | str) -> str:
    if isinstance(data, str):
        return data[:OUTPUT_CAP]
    return data[:OUTPUT_CAP].decode("utf-8", "replace")


def _read(fh: IO[bytes]) -> str:
    fh.seek(0)
    return fh.read(OUTPUT_CAP).decode("utf-8", "replace")


def run_captured(
    driver: Driver, handle: Any, argv: list[str], timeout: float
) -> tuple[int | None, str, str, str | None]:
    """Run ``argv`` in the sandbox: (exit status, stdout, stderr, error).

    The drivers of :mod:`mien.agent.sandbox` take a ``timeout`` and answer a result with
    ``exit_status``, ``stdout`` and ``stderr``. A driver whose ``run`` only answers an exit
    status (its output on the inherited descriptors) runs in a forked child whose
    descriptors 1 and 2 are capture files, killed past ``timeout``."""
    if _accepts(driver.run, "timeout") and not _accepts(driver.run, "stdout"):
        try:
            result: Any = driver.run(handle, argv, timeout=timeout)
        except Exception as exc:
            return None, "", "", f"{type(exc).__name__}: {exc}"
        if hasattr(result, "exit_status"):
            return int(result.exit_status), _text(result.stdout), _text(result.stderr), None
        return int(result), "", "", None
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        if _accepts(driver.run, "stdout"):
            kwargs: dict[str, Any] = {"stdout": out, "stderr": err}
            if _accepts(driver.run, "timeout"):
                kwargs["timeout"] = timeout
            try:
                status: int | None = driver.run(handle, argv, **kwargs)
                error = None
            except Exception as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
            return status, _read(out), _read(err), error
        pid = os.fork()
        if pid == 0:  # the child: never returns into the agent's code
            code = 125
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                os.setsid()
                code = int(driver.run(handle, argv)) & 0xFF
            finally:
                os._exit(code)
        deadline = time.monotonic() + timeout
        while True:
            done, wstatus = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(wstatus), _read(out), _read(err), None
            if time.monotonic() > deadline:
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return None, _read(out), _read(err), f"killed after its timeout of {timeout:g}s"
            time.sleep(0.02)


class SandboxHost:
    """Serve the leases the broker gives this host until :meth:`stop`."""

    def __init__(
        self,
        client: Client,
        driver: Driver,
        *,
        driver_name: str | None = None,
        offer: tuple[float, int, int] | None = None,
        workdir: Path = Path("/var/lib/mien/sandboxes"),
        make_spec: Callable[[HostLease], Any] = default_spec,
        poll_interval: float = 0.5,
        offer_interval: float = 5.0,
        usage_interval: float = 5.0,
        idle_timeout: float | None = None,
        log: Callable[[str], None] = lambda _m: None,
        warn: Callable[[str], None] = lambda _m: None,
    ) -> None:
        self.client = client
        self.driver = driver
        self.driver_name = driver_name
        self.offered = offer
        self.workdir = workdir
        self.make_spec = make_spec
        self.poll_interval = poll_interval
        self.offer_interval = offer_interval
        self.usage_interval = usage_interval
        self.idle_timeout = idle_timeout
        self.log = log
        self.warn = warn
        self.held: dict[str, Held] = {}
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="mien-sandbox")
        self._stop = threading.Event()
        self._lock = threading.Lock()

    # --- the loop --------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def adopt(self) -> None:
        """Take over the sandboxes a previous run of the agent left (drivers that can list
        them): the first answer from the server keeps the live ones and destroys the rest."""
        lister = getattr(self.driver, "list", None)
        if lister is None:
            return
        try:
            found = lister()
        except Exception as exc:
            self.warn(f"sandbox host: cannot list earlier sandboxes: {exc}")
            return
        with self._lock:
            for handle in found:
                lease_id = getattr(handle, "lease_id", None)
                if isinstance(lease_id, str) and lease_id not in self.held:
                    self.held[lease_id] = Held(lease_id, handle=handle, ready=True)

    def run(self) -> None:
        self.adopt()
        next_offer = next_usage = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_offer:
                    self.offer()
                    next_offer = now + self.offer_interval
                self.step()
                if now >= next_usage:
                    self.report_usage()
                    next_usage = now + self.usage_interval
                self.reclaim_idle()
            except ClientError as exc:
                self.warn(f"sandbox host: {exc}")
            except Exception as exc:  # the thread must not die silently beside the agent
                self.warn(f"sandbox host: {type(exc).__name__}: {exc}")
            self._stop.wait(self.poll_interval)
        self.pool.shutdown(wait=True)

    def offer(self) -> None:
        cpu, memory, storage = self.offered or capacity(self.workdir)
        self.client.send(ops.offer(cpu, memory, storage, self.driver_name))

    def step(self) -> None:
        """Ask for work once and start it (building and running happen in the pool)."""
        work = self.client.send(ops.work())
        for lease in work.provision:
            with self._lock:
                self.held[lease.id] = Held(lease.id)
            self.pool.submit(self._provision, lease)
        for lease_id in work.destroy:
            self.pool.submit(self._destroy, lease_id, True)
        live = set(work.live)
        with self._lock:
            stray = [i for i, h in self.held.items() if i not in live and h.ready]
        for lease_id in stray:
            self.pool.submit(self._destroy, lease_id, False)
        for run in work.runs:
            self.pool.submit(self._run, run)
        for shell in work.shells:  # a thread each: a shell lasts as long as its holder likes
            threading.Thread(
                target=self._shell, args=(shell,), daemon=True, name="mien-shell"
            ).start()

    # --- the work --------------------------------------------------------------------

    def _provision(self, lease: HostLease) -> None:
        held = self.held[lease.id]
        try:
            with held.lock:
                held.handle = self.driver.provision(self.make_spec(lease))
        except Exception as exc:
            reason = str(exc).strip() or type(exc).__name__
            self.warn(f"lease {lease.id} ({lease.persona}): could not build it: {reason}")
            self._forget(lease.id, quiet=True)
            self._send(ops.report_lease(lease.id, "failed", reason[:8000]))
            return
        held.ready = True
        held.last_active = time.monotonic()
        self.log(f"lease {lease.id} ({lease.persona}) ready")
        self._send(ops.report_lease(lease.id, "ready"))

    def _forget(self, lease_id: str, *, quiet: bool = False) -> bool:
        with self._lock:
            held = self.held.pop(lease_id, None)
        if held is None or held.handle is None:
            return False
        try:
            with held.lock:
                self.driver.destroy(held.handle)
        except Exception as exc:
            if not quiet:
                self.warn(f"lease {lease_id}: destroy failed: {exc}")
        return True

    def _destroy(self, lease_id: str, told: bool) -> None:
        self._forget(lease_id)
        if told:
            self._send(ops.report_lease(lease_id, "destroyed"))
        self.log(f"lease {lease_id} destroyed")

    def _run(self, run: HostRun) -> None:
        held = self.held.get(run.lease_id)
        if held is None or not held.ready:
            self._send(
                ops.run_result(
                    run.id, None, "", "", f"lease {run.lease_id} is not ready on this host"
                )
            )
            return
        held.last_active = time.monotonic()
        held.launched.append(list(run.argv))
        status, out, err, error = run_captured(
            self.driver, held.handle, list(run.argv), run.timeout
        )
        held.last_active = time.monotonic()
        self._send(ops.run_result(run.id, status, out, err, error))

    def _shell(self, shell: HostShell) -> None:
        from mien.agent import sandbox_shell

        held = self.held.get(shell.lease_id)
        if held is None or not held.ready:
            self.warn(f"shell session {shell.id}: lease {shell.lease_id} is not ready here")
            return
        held.launched.append(list(shell.argv))

        def touch() -> None:
            held.last_active = time.monotonic()

        touch()
        status = sandbox_shell.serve(
            self.client, self.driver, held.handle, shell, touch=touch, warn=self.warn
        )
        self.log(f"lease {shell.lease_id}: shell {shell.id} ended (exit status {status})")

    def report_usage(self) -> None:
        with self._lock:
            ready = [h for h in self.held.values() if h.ready]
        for held in ready:
            try:
                found = self.driver.usage(held.handle)
            except Exception as exc:
                self.warn(f"lease {held.lease_id}: usage unavailable: {exc}")
                continue
            processes = [list(p) for p in getattr(found, "processes", [])]
            for argv in held.launched:
                if argv not in processes:
                    processes.append(argv)
            self._send(
                ops.report_usage(
                    held.lease_id,
                    float(getattr(found, "cpu_seconds", 0.0)),
                    int(getattr(found, "peak_memory", 0)),
                    processes[-1000:],
                    getattr(found, "oom_killed", None),  # None: the driver cannot tell
                )
            )

    def reclaim_idle(self) -> None:
        if self.idle_timeout is None:
            return
        now = time.monotonic()
        with self._lock:
            idle = [
                h for h in self.held.values() if h.ready and now - h.last_active > self.idle_timeout
            ]
        for held in idle:
            self._forget(held.lease_id)
            why = f"idle for {self.idle_timeout:g}s: reclaimed by sandbox host"
            self._send(ops.report_lease(held.lease_id, "released", why))
            self.log(f"lease {held.lease_id} reclaimed ({why})")

    def _send(self, call: Any) -> None:
        try:
            self.client.send(call)
        except ClientError as exc:
            self.warn(f"sandbox host: {exc}")


class SandboxUnavailable(Exception):
    """The driver asked for cannot be loaded; the message says why."""


def load_driver(name: str) -> Driver:
    """The driver called ``name`` from :mod:`mien.agent.sandbox` (its ``get_driver``), or
    :class:`SandboxUnavailable` saying what is missing."""
    from importlib import import_module

    try:
        module = import_module("mien.agent.sandbox")
    except ImportError as exc:
        raise SandboxUnavailable(f"no sandbox drivers in this build ({exc})") from None
    factory = getattr(module, "get_driver", None)
    if factory is None:
        raise SandboxUnavailable("mien.agent.sandbox has no get_driver(name)")
    try:
        driver: Driver = factory(name)
    except Exception as exc:
        raise SandboxUnavailable(f"sandbox driver {name!r}: {exc}") from None
    return driver
