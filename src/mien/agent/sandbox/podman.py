"""The ``podman`` sandbox driver: one container per lease through the Docker-compatible API
of ``podman system service`` (the Docker SDK), started on demand on a Unix socket under
the agent's run directory unless ``MIEN_PODMAN_URL`` names one.

The container runs the persona image (:mod:`mien.agent.sandbox.images`) with a read-only
root file system; ``/workspace``, ``/tmp`` and the user's home (filled at start from the
persona's) are tmpfs, each of the lease's storage size; the
memory limit (swap included; an OOM-killed program exits 137), the CPU quota
(``nano_cpus``), a pids limit, every capability dropped and no new privileges, the
persona's mounts, and either no network or a per-lease podman network restricted from
inside its namespace by nftables (only the egress allow-list) and ``tc`` (bandwidth).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mien.agent.sandbox import images, netns, roots
from mien.agent.sandbox.base import (
    Driver,
    Progress,
    RunResult,
    SandboxError,
    SandboxHandle,
    SandboxSpec,
    Usage,
    as_spec,
)
from mien.agent.sandbox.local import DEFAULT_STORAGE, PRELUDE, run_dir

LABEL = "mien.lease"
_WAIT_READY = (
    "i=0; until [ -e /tmp/.mien-ready ]; do i=$((i+1)); [ $i -gt 200 ] && exit 1; sleep 0.05; done"
)


class PodmanDriver(Driver):
    name = "podman"

    def __init__(
        self,
        recipe: roots.Recipe | None = None,
        *,
        url: str | None = None,
        cache: Path | None = None,
        runs: Path | None = None,
    ) -> None:
        self.recipe = recipe or roots.Recipe()
        self.url = url or os.environ.get("MIEN_PODMAN_URL") or None
        self.cache = cache
        self.runs = runs or run_dir()
        self._client: Any = None
        self._service: subprocess.Popen[bytes] | None = None

    def available(self) -> str | None:
        if os.geteuid() != 0:
            return "needs root (rootful podman, nftables in the container's namespace)"
        try:
            import docker  # noqa: F401
        except ImportError:
            return "the docker Python package is not installed"
        return images.missing()

    # --- the service ---------------------------------------------------------------------

    @property
    def socket(self) -> Path:
        return self.runs / "podman" / "podman.sock"

    def client(self) -> Any:
        """A Docker SDK client on the service (started here when none is given)."""
        if self._client is not None:
            return self._client
        import docker

        url = self.url
        if url is None:
            if not _answers(self.socket):
                self.socket.unlink(missing_ok=True)  # left by a service that is gone
                self._start_service()
            url = f"unix://{self.socket}"
        self._client = docker.DockerClient(base_url=url, timeout=120)
        return self._client

    def _start_service(self) -> None:
        self.socket.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        log = open(self.socket.parent / "service.log", "ab")  # noqa: SIM115 (the child keeps it)
        self._service = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{self.socket}"],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        (self.socket.parent / "service.pid").write_text(str(self._service.pid))
        deadline = time.monotonic() + 20
        while not self.socket.exists():
            if self._service.poll() is not None or time.monotonic() > deadline:
                raise SandboxError(
                    f"podman system service did not start (see {self.socket.parent}/service.log)"
                )
            time.sleep(0.05)

    def stop_service(self) -> None:
        """Stop the service this driver started (not one it was given)."""
        self._client = None
        if self._service is not None and self._service.poll() is None:
            self._service.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._service.wait(timeout=10)
        self._service = None

    # --- provision -----------------------------------------------------------------------

    def provision(self, spec: SandboxSpec, progress: Progress | None = None) -> SandboxHandle:
        spec = as_spec(spec)
        missing = self.available()
        if missing:
            raise SandboxError(f"podman sandbox driver: {missing}")
        user = spec.user or roots.SANDBOX_USER
        for mount in spec.mounts:
            if not Path(mount.host_path).exists():
                raise SandboxError(
                    f"access_controls.filesystem: {mount.host_path} does not exist on this host"
                )
        addresses = netns.resolve(spec.egress) if spec.network == "egress" else {}
        image = images.persona_image(self.recipe, spec.persona, user, progress, self.cache)
        client = self.client()
        name = f"mien-lease-{spec.lease_id}"
        handle = SandboxHandle(self.name, spec.lease_id, spec.persona_name, {
            "container": name, "user": user, "image": image,
        })  # fmt: skip
        try:
            self._create(client, handle, spec, image, addresses)
        except BaseException as exc:
            self.destroy(handle)
            if isinstance(exc, SandboxError | KeyboardInterrupt | SystemExit):
                raise
            raise SandboxError(f"podman: {exc}") from None
        if progress:
            progress(f"sandbox for lease {spec.lease_id} is ready")
        return handle

    def _create(
        self,
        client: Any,
        handle: SandboxHandle,
        spec: SandboxSpec,
        image: str,
        addresses: dict[str, list[str]],
    ) -> None:
        from docker.types import Mount as DockerMount

        limits, user = spec.limits, handle.data["user"]
        storage = limits.storage_bytes or DEFAULT_STORAGE
        kwargs: dict[str, Any] = {
            "name": handle.data["container"],
            "hostname": f"lease-{spec.lease_id}"[:63],
            "labels": {LABEL: spec.lease_id, "mien.persona": spec.persona_name},
            "user": f"{roots.SANDBOX_UID}:{roots.SANDBOX_UID}",
            "working_dir": f"/home/{user}",
            "read_only": True,
            "tmpfs": {
                "/workspace": f"size={storage},mode=1777",
                "/tmp": f"size={storage},mode=1777",
                f"/home/{user}": f"size={storage},mode=0750,U",
            },
            "environment": {"HOME": f"/home/{user}"},
            "mounts": [
                DockerMount(m.host_path, m.host_path, type="bind", read_only=m.mode == "ro")
                for m in spec.mounts
            ],
            "pids_limit": limits.pids,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "detach": True,
        }
        if limits.memory_bytes:
            kwargs["mem_limit"] = limits.memory_bytes
            kwargs["memswap_limit"] = limits.memory_bytes
        if limits.cpu_cores:
            kwargs["nano_cpus"] = int(limits.cpu_cores * 1e9)
        if spec.network == "egress":
            net = client.networks.create(f"mien-lease-{spec.lease_id}", driver="bridge")
            handle.data["network"] = net.name
            kwargs["network"] = net.name
            kwargs["extra_hosts"] = {h: a[0] for h, a in addresses.items() if a}
        else:
            kwargs["network_mode"] = "none"
        # The home is a tmpfs (the root is read-only): it starts as the persona left it.
        start = f'cp -a {roots.HOME_SKEL}/. "$HOME"/; : >/tmp/.mien-ready; exec sleep infinity'
        container = client.containers.run(image, ["/bin/sh", "-c", start], **kwargs)
        container.reload()
        pid = int(container.attrs["State"]["Pid"])
        handle.data["id"] = container.id
        handle.data["cgroups"] = _cgroups_of(pid)
        ready = self.run(handle, ["sh", "-c", _WAIT_READY], timeout=30)
        if ready.exit_status != 0:
            raise SandboxError("the sandbox does not start: " + ready.stderr.decode()[-500:])
        if spec.network == "egress":
            nsenter = ["nsenter", "-t", str(pid), "-n"]
            _check([*nsenter, "nft", "-f", "-"], netns.ruleset(spec.egress, addresses))
            if limits.bandwidth_bps:
                rate = max(8000, limits.bandwidth_bps)
                _check([*nsenter, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate",
                        f"{rate}bit", "burst", str(max(1600, rate // 800)), "latency", "50ms"])  # fmt: skip

    # --- run -----------------------------------------------------------------------------

    def run(
        self,
        handle: SandboxHandle,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        tty: bool = False,
        timeout: float | None = None,
    ) -> RunResult:
        self._record(handle, argv)
        user = handle.data["user"]
        full = ["/bin/sh", "-c", PRELUDE, "sh", *argv]
        if stdin is not None or tty:
            # The API's attach cannot half-close stdin; the CLI on the same service can.
            cmd = ["podman", "--url", f"unix://{self.socket}"] if self.url is None else (
                ["podman", "--url", self.url])  # fmt: skip
            cmd += ["exec", "-i", *(["-t"] if tty else []), "--user", str(roots.SANDBOX_UID),
                    "--workdir", f"/home/{user}"]  # fmt: skip
            for key, value in (env or {}).items():
                cmd += ["--env", f"{key}={value}"]
            cmd += [handle.data["container"], *full]
            if tty:
                return RunResult(subprocess.run(cmd, check=False, timeout=timeout).returncode,
                                 b"", b"")  # fmt: skip
            try:
                done = subprocess.run(
                    cmd, input=stdin, capture_output=True, timeout=timeout, check=False
                )
            except subprocess.TimeoutExpired as exc:
                return RunResult(
                    124, exc.stdout or b"", (exc.stderr or b"") + b"\nmien: timed out\n"
                )
            return RunResult(done.returncode, done.stdout, done.stderr)
        api = self.client().api
        try:
            exec_id = api.exec_create(
                handle.data["container"], full, user=str(roots.SANDBOX_UID),
                environment=dict(env or {}), workdir=f"/home/{user}",
            )["Id"]  # fmt: skip
        except Exception as exc:
            raise SandboxError(f"lease {handle.lease_id}: {exc}") from None
        result: dict[str, Any] = {}

        def start() -> None:
            result["out"] = api.exec_start(exec_id, demux=True)

        worker = threading.Thread(target=start, daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            with contextlib.suppress(Exception):
                os.kill(int(api.exec_inspect(exec_id)["Pid"]), 9)
            worker.join(10)
            return RunResult(124, b"", b"mien: timed out\n")
        out, err = result.get("out") or (b"", b"")
        code = api.exec_inspect(exec_id).get("ExitCode")
        return RunResult(int(code if code is not None else 1), out or b"", err or b"")

    def spawn(
        self,
        handle: SandboxHandle,
        argv: Sequence[str],
        *,
        stdin: int,
        stdout: int,
        stderr: int,
        tty: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """``podman exec -i`` (``-t`` with a terminal, in a session whose controlling
        terminal it is, so podman passes window size changes on to the container)."""
        self._record(handle, argv)
        self.client()  # the service is up (started here if need be)
        cmd = ["podman", "--url", self.url or f"unix://{self.socket}", "exec", "-i"]
        if tty:
            cmd.append("-t")
        cmd += ["--user", str(roots.SANDBOX_UID), "--workdir", f"/home/{handle.data['user']}"]
        for key, value in (env or {}).items():
            cmd += ["--env", f"{key}={value}"]
        cmd += [handle.data["container"], "/bin/sh", "-c", PRELUDE, "sh", *argv]
        if tty:
            cmd = ["setsid", "--ctty", "--wait", "--", *cmd]
        return subprocess.Popen(
            cmd, stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=not tty
        )

    def _record(self, handle: SandboxHandle, argv: Sequence[str]) -> None:
        where = self.runs / "podman" / "runs"
        where.mkdir(parents=True, exist_ok=True)
        with open(where / f"{handle.lease_id}.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(list(argv)) + "\n")

    # --- usage, list, destroy --------------------------------------------------------------

    def usage(self, handle: SandboxHandle) -> Usage:
        processes: list[list[str]] = []
        with contextlib.suppress(OSError):
            text = (self.runs / "podman" / "runs" / f"{handle.lease_id}.jsonl").read_text()
            processes = [json.loads(line) for line in text.splitlines()[-1000:] if line]
        with contextlib.suppress(Exception):
            top = self.client().containers.get(handle.data["container"]).top(ps_args="-eo args")
            for row in top.get("Processes") or []:
                argv = " ".join(row).split()
                if argv and argv not in processes:
                    processes.append(argv)
        groups = handle.data.get("cgroups") or {}
        return Usage(
            cpu_seconds=_read_int(groups.get("cpuacct"), "cpuacct.usage") / 1e9,
            peak_memory_bytes=_read_int(groups.get("memory"), "memory.max_usage_in_bytes"),
            processes=processes,
            oom_killed=_oom_kills(groups.get("memory")) > 0,
        )

    def list(self) -> list[SandboxHandle]:
        found = []
        for c in self.client().containers.list(all=True, filters={"label": LABEL}):
            labels = c.labels or {}
            found.append(SandboxHandle(self.name, labels.get(LABEL, ""),
                                       labels.get("mien.persona", ""),
                                       {"container": c.name, "id": c.id}))  # fmt: skip
        return found

    def destroy(self, handle: SandboxHandle) -> None:
        import docker.errors

        client = self.client()
        with contextlib.suppress(docker.errors.NotFound):
            client.containers.get(handle.data.get("container") or handle.data["id"]).remove(
                force=True, v=True
            )
        with contextlib.suppress(docker.errors.NotFound):
            client.networks.get(f"mien-lease-{handle.lease_id}").remove()
        (self.runs / "podman" / "runs" / f"{handle.lease_id}.jsonl").unlink(missing_ok=True)


def _answers(path: Path) -> bool:
    """Whether a service listens on the Unix socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def _check(argv: list[str], stdin: str | None = None) -> None:
    done = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode != 0:
        raise SandboxError(f"{' '.join(argv[:5])}: {done.stderr.strip()}")


def _cgroups_of(pid: int) -> dict[str, str]:
    """The container's cgroup v1 directories, from its first process's /proc entry."""
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(","):
                if name in ("memory", "cpuacct", "cpu", "pids"):
                    out[name] = f"/sys/fs/cgroup/{name}{path}"
    return out


def _read_int(directory: str | None, name: str) -> int:
    if not directory:
        return 0
    try:
        return int((Path(directory) / name).read_text())
    except (OSError, ValueError):
        return 0


def _oom_kills(directory: str | None) -> int:
    if not directory:
        return 0
    with contextlib.suppress(OSError, ValueError):
        for line in (Path(directory) / "memory.oom_control").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
    return 0
