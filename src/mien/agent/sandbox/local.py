"""The ``local`` sandbox driver: bubblewrap namespaces plus cgroup v1 limits, for hosts
without a container engine.

Each lease gets, under the run directory (``/run/mien/sandbox/lease-<id>/``):

- ``storage``: a tmpfs of the lease's ``storage`` size holding everything the sandbox
  writes (so the size limit covers every write);
- ``root``: an overlay whose read-only lower layers are the cached persona layer over the
  cached base root (:mod:`mien.agent.sandbox.roots`) and whose upper layer is in
  ``storage`` — the cached trees themselves are never written;
- cgroups (:mod:`mien.agent.sandbox.cgroups`) with the CPU quota, memory and pids limits;
- for an egress allow-list, a network namespace (:mod:`mien.agent.sandbox.netns`).

Programs run through ``bwrap`` with new user, pid, ipc, uts and mount namespaces (and an
empty network namespace unless egress is allowed), as the persona user inside, mapped to
an unprivileged host uid of the lease's own (200000 + n), with every capability dropped.
Only the lease's root, ``/proc``, a minimal ``/dev`` and the persona's mounts are visible.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mien.agent.sandbox import cgroups, netns, roots
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
from mien.spec.models import APPLICATION_ENV_PATH

DEFAULT_RUN_DIR = Path("/run/mien/sandbox")
DEFAULT_STORAGE = 1 << 30
HOST_UID_BASE = 200_000
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# Loads the persona's login environment and the applications' settings, then runs argv.
PRELUDE = (
    ". /etc/profile.d/mien.sh 2>/dev/null; set -a; "
    f'[ -r {APPLICATION_ENV_PATH} ] && . {APPLICATION_ENV_PATH}; set +a; exec "$@"'
)


def run_dir() -> Path:
    return Path(os.environ.get("MIEN_SANDBOX_RUN") or DEFAULT_RUN_DIR)


class LocalDriver(Driver):
    name = "local"

    def __init__(
        self,
        recipe: roots.Recipe | None = None,
        *,
        cache: Path | None = None,
        runs: Path | None = None,
    ) -> None:
        self.recipe = recipe or roots.Recipe()
        self.cache = cache
        self.runs = runs or run_dir()

    # --- availability ------------------------------------------------------------------

    def available(self) -> str | None:
        if os.geteuid() != 0:
            return "needs root (mounts, cgroups and namespaces)"
        if shutil.which("bwrap") is None:
            return "bubblewrap (bwrap) is not installed (scripts/system-deps)"
        return cgroups.missing()

    # --- provision ---------------------------------------------------------------------

    def _dir(self, lease_id: str) -> Path:
        return self.runs / f"lease-{lease_id}"

    def provision(self, spec: SandboxSpec, progress: Progress | None = None) -> SandboxHandle:
        spec = as_spec(spec)
        missing = self.available()
        if missing:
            raise SandboxError(f"local sandbox driver: {missing}")
        user = spec.user or roots.SANDBOX_USER
        if not _USER.match(user):
            raise SandboxError(f"sandbox user {user!r}: not a valid user name")
        for mount in spec.mounts:
            if not Path(mount.host_path).exists():
                raise SandboxError(
                    f"access_controls.filesystem: {mount.host_path} does not exist on this host"
                )
        addresses = netns.resolve(spec.egress) if spec.network == "egress" else {}
        base = roots.base_root(self.recipe, progress, self.cache)
        layer = roots.persona_layer(base, spec.persona, progress, self.cache, user)
        self.runs.mkdir(parents=True, exist_ok=True)
        where = self._dir(spec.lease_id)
        with self._lock():
            if where.exists():
                raise SandboxError(f"lease {spec.lease_id} already has a sandbox on this host")
            where.mkdir(mode=0o711)
            handle = SandboxHandle(
                self.name,
                spec.lease_id,
                spec.persona_name,
                {"dir": str(where), "host_uid": self._free_uid(), "user": user},
            )
            self._save(handle)
        try:
            self._build(handle, spec, base, layer, addresses)
            self._save(handle)
            ready = self.run(handle, ["true"], timeout=30)
            if ready.exit_status != 0:
                raise SandboxError(
                    "the sandbox does not start: " + ready.stderr.decode(errors="replace")[-500:]
                )
        except BaseException:
            self.destroy(handle)
            raise
        if progress:
            progress(f"sandbox for lease {spec.lease_id} is ready")
        return handle

    def _build(
        self,
        handle: SandboxHandle,
        spec: SandboxSpec,
        base: Path,
        layer: Path,
        addresses: dict[str, list[str]],
    ) -> None:
        where, uid = Path(handle.data["dir"]), int(handle.data["host_uid"])
        storage = where / "storage"
        storage.mkdir()
        size = spec.limits.storage_bytes or DEFAULT_STORAGE
        subprocess.run(
            [
                "mount",
                "-t",
                "tmpfs",
                "-o",
                f"size={size},mode=0700,nosuid,nodev",
                "mien-sandbox",
                str(storage),
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        handle.data["storage"] = str(storage)
        for sub in ("upper", "work"):
            (storage / sub).mkdir()
        root = where / "root"
        roots.mount([layer, base], root, storage / "upper", storage / "work")
        handle.data["root"] = str(root)
        home = root / "home" / handle.data["user"]
        workspace = root / "workspace"
        workspace.mkdir(exist_ok=True)
        for path in (home, workspace):  # the persona user owns these (copied up to storage)
            _chown_tree(path, uid)
        handle.data["cgroups"] = cgroups.create(spec.lease_id, spec.limits)
        if spec.network == "egress":
            handle.data["net"] = netns.create(
                spec.lease_id, spec.egress, addresses, spec.limits.bandwidth_bps
            )
            hosts = root / "etc" / "hosts"
            hosts.unlink(missing_ok=True)  # never write through a link
            hosts.write_text(netns.hosts_file(addresses))
        for mount in spec.mounts:  # bound by root here: the lease uid need not reach them
            _bind(mount.host_path, root, read_only=mount.mode == "ro")
        handle.data["mounts"] = [[m.host_path, m.mode] for m in spec.mounts]

    def _free_uid(self) -> int:
        taken = {int(h.data.get("host_uid", 0)) for h in self.list()}
        n = 0
        while HOST_UID_BASE + n in taken:
            n += 1
        return HOST_UID_BASE + n

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        fd = os.open(self.runs / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _save(self, handle: SandboxHandle) -> None:
        path = Path(handle.data["dir"]) / "handle.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(handle.to_json()))
        tmp.replace(path)

    # --- run ---------------------------------------------------------------------------

    def command(
        self,
        handle: SandboxHandle,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        tty: bool = False,
    ) -> list[str]:
        """The bwrap command line running ``argv`` inside (after the environment prelude).

        Without ``tty`` the program gets a new session (``--new-session``: it cannot push
        input into a terminal it shares with the host). With ``tty`` its terminal is one
        allocated for it alone, which it keeps as its controlling terminal (job control,
        window size changes); what it could push there reaches only itself."""
        data = handle.data
        user = str(data["user"])
        cmd = [
            "bwrap", "--unshare-user", "--uid", str(roots.SANDBOX_UID), "--gid",
            str(roots.SANDBOX_UID), "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--hostname", f"lease-{handle.lease_id}"[:63],
            "--bind", str(data["root"]), "/", "--proc", "/proc", "--dev", "/dev",
            "--die-with-parent", "--cap-drop", "ALL",
        ]  # fmt: skip
        if not tty:
            cmd.append("--new-session")
        if "net" not in data:
            cmd.append("--unshare-net")
        cmd += ["--chdir", f"/home/{user}", "--", "/bin/sh", "-c", PRELUDE, "sh"]
        if env:
            cmd += ["/usr/bin/env", *(f"{k}={v}" for k, v in env.items())]
        return cmd + list(argv)

    def popen(
        self,
        handle: SandboxHandle,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        capture: bool = True,
    ) -> subprocess.Popen[bytes]:
        """The streaming variant of :meth:`run`: a started process (pipes when ``capture``)."""
        pipe = subprocess.PIPE if capture else None
        return self._start(handle, argv, env, (pipe, pipe, pipe), tty=False)

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
        return self._start(handle, argv, env, (stdin, stdout, stderr), tty=tty)

    def _start(
        self,
        handle: SandboxHandle,
        argv: Sequence[str],
        env: Mapping[str, str] | None,
        stdio: tuple[int | None, int | None, int | None],
        *,
        tty: bool,
    ) -> subprocess.Popen[bytes]:
        data = handle.data
        if not data.get("root") or not os.path.ismount(str(data["root"])):
            raise SandboxError(f"lease {handle.lease_id} has no sandbox on this host")
        for name, value in (env or {}).items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or "\0" in value:
                raise SandboxError(f"environment variable {name!r}: not a valid name or value")
        self._record(handle, argv)
        user = str(data["user"])
        base_env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
            "HOME": f"/home/{user}",
            "USER": user,
            "LOGNAME": user,
            "LANG": "C.UTF-8",
        }
        cmd = _enter(handle.lease_id, int(data["host_uid"]), data.get("net"))
        cmd += self.command(handle, argv, env or {}, tty=tty)
        if tty:  # a session of its own whose controlling terminal is stdin (setsid --ctty)
            cmd = ["setsid", "--ctty", "--wait", "--", *cmd]
        return subprocess.Popen(
            cmd,
            stdin=stdio[0],
            stdout=stdio[1],
            stderr=stdio[2],
            env=base_env,
            cwd="/",
            start_new_session=not tty,
        )

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
        proc = self.popen(handle, argv, env=env, capture=not tty)
        try:
            out, err = proc.communicate(None if tty else (stdin or b""), timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            return RunResult(124, out or b"", (err or b"") + b"\nmien: timed out\n")
        return RunResult(_status(proc.returncode), out or b"", err or b"")

    def _record(self, handle: SandboxHandle, argv: Sequence[str]) -> None:
        with open(Path(handle.data["dir"]) / "runs.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(list(argv)) + "\n")

    # --- usage, list, destroy ------------------------------------------------------------

    def usage(self, handle: SandboxHandle) -> Usage:
        processes: list[list[str]] = []
        with contextlib.suppress(OSError):
            text = (Path(handle.data["dir"]) / "runs.jsonl").read_text(encoding="utf-8")
            processes = [json.loads(line) for line in text.splitlines()[-1000:] if line]
        for pid in cgroups.pids(handle.lease_id):  # what is running inside now
            with contextlib.suppress(OSError):
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    argv = [a.decode(errors="replace") for a in fh.read(8192).split(b"\0") if a]
                if argv and os.path.basename(argv[0]) != "bwrap" and argv not in processes:
                    processes.append(argv)
        return Usage(
            cpu_seconds=cgroups.cpu_seconds(handle.lease_id),
            peak_memory_bytes=cgroups.peak_memory(handle.lease_id),
            processes=processes,
            oom_killed=cgroups.oom_kills(handle.lease_id) > 0,
        )

    def list(self) -> list[SandboxHandle]:
        found = []
        for path in sorted(self.runs.glob("lease-*/handle.json")):
            with contextlib.suppress(OSError, ValueError, KeyError):
                found.append(SandboxHandle.from_json(json.loads(path.read_text())))
        return found

    def destroy(self, handle: SandboxHandle) -> None:
        where = self._dir(handle.lease_id)
        cgroups.kill_all(handle.lease_id)
        if isinstance(handle.data.get("net"), dict):
            netns.destroy(handle.data["net"])
        else:
            netns.destroy({"netns": netns.name_for(handle.lease_id)})
        roots.umount(where / "root")
        roots.umount(where / "storage")
        cgroups.destroy(handle.lease_id)
        if where.exists() and not any(
            os.path.ismount(p) for p in (where / "root", where / "storage")
        ):
            shutil.rmtree(where, ignore_errors=True)


def _status(code: int) -> int:
    return 128 - code if code < 0 else code


def _bind(host_path: str, root: Path, *, read_only: bool) -> None:
    """Bind ``host_path`` at the same path under ``root`` (read-only: remounted so)."""
    target = root
    for part in Path(host_path).parts[1:]:
        target = target / part
        if target.is_symlink():
            raise SandboxError(f"access_controls.filesystem: {host_path}: {target} is a link")
    if Path(host_path).is_dir():
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(exist_ok=True)
    argvs = [["mount", "--bind", host_path, str(target)]]
    if read_only:
        argvs.append(["mount", "-o", "remount,bind,ro,nosuid,nodev", str(target)])
    for argv in argvs:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise SandboxError(f"access_controls.filesystem: {host_path}: {done.stderr.strip()}")


def _chown_tree(path: Path, uid: int) -> None:
    os.lchown(path, uid, uid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, uid)


def _enter(lease_id: str, uid: int, net: Any) -> list[str]:
    """The commands that put the sandbox in the lease's cgroups (and network namespace) and
    drop to its host uid before bwrap starts (a wrapper, not a ``preexec_fn``: the agent
    has threads)."""
    groups = [str(p / "cgroup.procs") for p in cgroups.paths(lease_id).values()]
    join = "".join(f'echo $$ >"${i + 1}" || exit 125; ' for i in range(len(groups)))
    cmd = ["/bin/sh", "-c", f'{join}shift {len(groups)}; exec "$@"', "sh", *groups]
    if isinstance(net, dict) and net.get("netns"):
        cmd += ["nsenter", f"--net={netns.NETNS_DIR / str(net['netns'])}", "--"]
    return [*cmd, "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
