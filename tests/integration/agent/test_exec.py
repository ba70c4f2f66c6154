"""The command router for real: ``mien exec`` as a subprocess, the generated shims run by a
real ``/bin/sh``, and remote-command capture, all on a temp root.

The routing table, shims and override scripts come from the ``commands`` handler's plan,
written by the test exactly as the engine would (path, bytes, mode).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mien.agent.handlers.base import Context
from mien.agent.handlers.commands import CommandRoutesHandler
from mien.agent.handlers.users import UserInfo
from mien.agent.router import (
    COMMANDS_LOG_DIR,
    ROUTES_PATH,
    SHIMS_DIR,
    Override,
    PassThrough,
    Refuse,
    commands_log,
)
from mien.agent.router_exec import run
from mien.agent.state import State
from mien.spec.models import Persona
from tests.support import make_machine, run_mien

REFUSED_DD = "mien: 'dd' is restricted by persona 'test-runner'\n"
# Arguments that must arrive unchanged (and be logged as valid JSON by the shims).
TRICKY = [
    "a b",
    'q"uote',
    "back\\slash",
    "new\nline",
    "tab\t",
    "bell\x07",
    "",
    "ünï €",
    "*",
    "$HOME",
]


def write_exe(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    path.chmod(0o755)
    return path


def apply_routes(root: Path, persona: Persona) -> None:
    """Write what the handler plans, as the engine would, and perform its operations."""
    handler = CommandRoutesHandler()
    ctx = Context(root, UserInfo("root", 0, 0, "/root", "/bin/sh"), persona.name)
    plan = handler.plan(ctx, persona)
    for spec in plan.files:
        assert spec.desired is not None and spec.desired.content is not None
        host = ctx.host_path(spec.path)
        host.parent.mkdir(parents=True, exist_ok=True)
        host.write_bytes(spec.desired.content)
        host.chmod(spec.desired.mode)
    for op in plan.operations:
        handler.perform(ctx, op.data)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A machine with persona test-runner's routing applied; tools live in its /opt/tools."""
    machine = make_machine(tmp_path / "root")
    State(machine).close()
    tools = machine / "opt/tools"
    # Records its arguments and exits 7, so both are checked end to end.
    write_exe(
        tools / "recorder",
        f"""\
        #!{sys.executable}
        import json, sys
        with open({str(tmp_path / "recorded.json")!r}, "w") as fh:
            json.dump(sys.argv[1:], fh)
        sys.exit(7)
        """,
    )
    # A wrapper that runs the command it overrides again, as audited wrappers do.
    write_exe(tools / "wrapper", '#!/bin/sh\necho "wrapper $*"\nexec wrapped "$@"\n')
    # The real commands show MIEN_ROUTED: it must never reach them (nor what they run).
    write_exe(
        machine / "usr/bin/wrapped",
        '#!/bin/sh\necho "real wrapped $* [${MIEN_ROUTED-}]"\nexit 3\n',
    )
    write_exe(machine / "usr/bin/selfish", '#!/bin/sh\necho "real selfish $* [${MIEN_ROUTED-}]"\n')
    write_exe(machine / "usr/sbin/mkfs.fake", "#!/bin/sh\necho formatted\n")
    # The machine's env(1), for an override that names it by path (/usr/bin/env).
    write_exe(machine / "usr/bin/env", '#!/bin/sh\nexec /usr/bin/env "$@"\n')
    persona = Persona.model_validate(
        {
            "name": "test-runner",
            "command_overrides": {
                "tool": "/opt/tools/recorder --from-override",
                "deploy": "#!/bin/sh\necho 'deploy is a dry run:' \"$@\"\nexit 4\n",
                "wrapped": "/opt/tools/wrapper",
                "viaenv": "/usr/bin/env wrapped --env",
                "missing": "/nonexistent/replacement",
                "selfish": "selfish --flag",
            },
            "restricted_commands": ["shutdown", "mkfs*", "dd"],
        }
    )
    apply_routes(machine, persona)
    return machine


def shell_env(root: Path, **extra: str) -> dict[str, str]:
    """PATH as /etc/profile.d/mien.sh makes it (shims first), for this root."""
    base = f"{root}/usr/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
    env = {k: v for k, v in os.environ.items() if k != "MIEN_ROUTED"}
    return {**env, "PATH": f"{root}{SHIMS_DIR}:{base}", "USER": "tester", **extra}


def sh(root: Path, script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", "-c", script, "sh", *args],
        capture_output=True,
        text=True,
        env=shell_env(root, **env),
        timeout=60,
        check=False,
    )


def log_lines(root: Path, uid: int = 0) -> list[dict[str, object]]:
    text = (root / commands_log(uid).lstrip("/")).read_text()
    return [json.loads(line) for line in text.splitlines()]


def audit_events(root: Path) -> list[tuple[str, dict[str, object]]]:
    with State(root) as state:
        return [(r.event, r.detail) for r in reversed(state.audit_records())]


# --- mien exec ------------------------------------------------------------------------------


def test_exec_refuses_a_restricted_command(root: Path) -> None:
    result = run_mien("exec", "--root", root, "--", "dd", "if=/dev/zero", "count=1")
    assert result.returncode == 126
    assert result.stderr == REFUSED_DD
    assert result.stdout == ""
    events = audit_events(root)
    assert events[-1] == (
        "command.refused",
        {
            "command": "dd",
            "argv": ["dd", "if=/dev/zero", "count=1"],
            "via": "mien exec",
            "pattern": "dd",
        },
    )
    line = json.loads((root / "var/log/mien/audit.jsonl").read_text().splitlines()[-1])
    assert line["event"] == "command.refused" and line["persona"] == "test-runner"


def test_exec_refuses_by_pattern_and_by_path(root: Path) -> None:
    for argv in (["mkfs.ext4", "/dev/sdz"], ["/usr/sbin/mkfs.fake"], ["/bin/dd"]):
        result = run_mien("exec", "--root", root, "--", *argv)
        name = os.path.basename(argv[0])
        assert result.returncode == 126, result
        assert result.stderr == f"mien: '{name}' is restricted by persona 'test-runner'\n"


def test_exec_runs_the_override_with_the_same_arguments_and_status(
    root: Path, tmp_path: Path
) -> None:
    result = run_mien("exec", "--root", root, "--", "tool", *TRICKY)
    assert result.returncode == 7, result
    assert json.loads((tmp_path / "recorded.json").read_text()) == ["--from-override", *TRICKY]
    event, detail = audit_events(root)[-1]
    assert event == "command.overridden"
    assert detail["argv"] == ["tool", *TRICKY]
    assert detail["replacement"] == ["/opt/tools/recorder", "--from-override"]


def test_an_absolute_replacement_is_looked_up_under_the_root(tmp_path: Path) -> None:
    """``/opt/tools/ls-audited`` is a path on the machine, as every path of a persona: with
    ``--root R`` it is ``R/opt/tools/ls-audited``, never the host's."""
    machine = make_machine(tmp_path / "machine")
    State(machine).close()
    write_exe(machine / "opt/tools/ls-audited", '#!/bin/sh\necho "audited ls $*"\n')
    persona = Persona.model_validate(
        {"name": "audited", "command_overrides": {"ls": "/opt/tools/ls-audited -l"}}
    )
    apply_routes(machine, persona)
    result = run_mien("exec", "--root", machine, "--", "ls", "x")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "audited ls -l x\n"
    (machine / "opt/tools/ls-audited").unlink()
    write_exe(tmp_path / "opt/tools/ls-audited", "#!/bin/sh\necho host\n")  # not the machine's
    result = run_mien("exec", "--root", machine, "--", "ls")
    assert result.returncode != 0
    assert "/opt/tools/ls-audited is not installed" in result.stderr


def test_exec_runs_an_inline_override(root: Path) -> None:
    result = run_mien("exec", "--root", root, "-v", "--", "deploy", "prod", "x y")
    assert result.returncode == 4
    assert result.stdout == "deploy is a dry run: prod x y\n"
    assert "'deploy' is overridden by persona 'test-runner'" in result.stderr


def test_exec_passes_other_commands_through(root: Path) -> None:
    result = run_mien("exec", "--root", root, "--", "sh", "-c", "echo ok; exit 5")
    assert (result.returncode, result.stdout, result.stderr) == (5, "ok\n", "")
    assert audit_events(root) == []  # a passthrough is not an audit event


def test_exec_not_found(root: Path) -> None:
    result = run_mien("exec", "--root", root, "--", "no-such-command-xyz")
    assert result.returncode == 127
    assert result.stderr == "mien: no-such-command-xyz: command not found\n"
    missing = run_mien("exec", "--root", root, "--", "missing")
    assert missing.returncode == 127
    assert missing.stderr == (
        "mien: 'missing' is overridden by persona 'test-runner' with "
        "/nonexistent/replacement, but /nonexistent/replacement is not installed\n"
    )


def test_exec_routes_what_the_command_runs_in_turn(root: Path) -> None:
    """The command gets the shims first on PATH: a restricted command it runs is refused."""
    result = run_mien("exec", "--root", root, "--", "sh", "-c", "dd if=/dev/null; echo rc=$?")
    assert result.stdout == "rc=126\n"
    assert result.stderr == REFUSED_DD


def test_override_that_reruns_its_command_reaches_the_real_one(root: Path) -> None:
    env = {"PATH": f"{root}/usr/bin:{os.environ['PATH']}"}
    result = run_mien("exec", "--root", root, "--", "wrapped", "a", env=env)
    assert result.returncode == 3
    assert result.stdout == "wrapper a\nreal wrapped a []\n"
    via_env = run_mien("exec", "--root", root, "--", "viaenv", "b", env=env)
    assert via_env.returncode == 3
    assert via_env.stdout == "wrapper --env b\nreal wrapped --env b []\n"
    selfish = run_mien("exec", "--root", root, "--", "selfish", "c", env=env)
    assert (selfish.returncode, selfish.stdout) == (0, "real selfish --flag c []\n")


def test_exec_without_a_routing_table(tmp_path: Path) -> None:
    bare = make_machine(tmp_path / "bare")
    quiet = run_mien("exec", "--root", bare, "--", "sh", "-c", "exit 9")
    assert (quiet.returncode, quiet.stderr) == (9, "")
    told = run_mien("exec", "--root", bare, "--verbose", "--", "true")
    assert told.returncode == 0
    assert "no routing table at" in told.stderr and "running as is" in told.stderr


def test_exec_fails_closed_on_a_broken_table(root: Path) -> None:
    (root / ROUTES_PATH.lstrip("/")).write_text("{broken")
    result = run_mien("exec", "--root", root, "--", "true")
    assert result.returncode == 126
    assert "routes.json: not valid JSON" in result.stderr
    assert "refusing to run 'true'" in result.stderr


def test_exec_usage_errors(root: Path) -> None:
    assert run_mien("exec", "--root", root).returncode == 2
    empty = run_mien("exec", "--root", root, "--", "")
    assert empty.returncode == 2 and "no command given" in empty.stderr


# --- the shims, run by a real /bin/sh -----------------------------------------------------------


def test_shim_refuses_like_mien_exec(root: Path) -> None:
    result = sh(root, 'dd "$@"', *TRICKY)
    assert result.returncode == 126
    assert result.stderr == REFUSED_DD
    line = log_lines(root)[-1]
    assert line["event"] == "command.refused"
    assert line["argv"] == ["dd", *TRICKY]
    assert line["persona"] == "test-runner"
    # The real uid, never $USER (which says "tester" here).
    assert (line["actor"], line["uid"]) == ("local:root", 0)
    assert line["via"] == "shim" and line["pattern"] == "dd"
    assert isinstance(line["ts"], int) and line["ts"] > 1_600_000_000


def test_pattern_shims_cover_installed_commands(root: Path) -> None:
    assert (root / SHIMS_DIR.lstrip("/") / "mkfs.fake").is_file()
    result = sh(root, "mkfs.fake /dev/sdz")
    assert result.returncode == 126
    assert result.stderr == "mien: 'mkfs.fake' is restricted by persona 'test-runner'\n"
    assert log_lines(root)[-1]["pattern"] == "mkfs*"


def test_shim_runs_the_override(root: Path, tmp_path: Path) -> None:
    result = sh(root, 'tool "$@"', *TRICKY)
    assert result.returncode == 7
    assert json.loads((tmp_path / "recorded.json").read_text()) == ["--from-override", *TRICKY]
    line = log_lines(root)[-1]
    assert line["event"] == "command.overridden"
    assert line["argv"] == ["tool", *TRICKY]
    assert line["replacement"] == ["/opt/tools/recorder", "--from-override"]
    inline = sh(root, "deploy prod")
    assert (inline.returncode, inline.stdout) == (4, "deploy is a dry run: prod\n")


def test_shim_override_that_reruns_its_command(root: Path) -> None:
    result = sh(root, "wrapped a b")
    assert (result.returncode, result.stdout) == (3, "wrapper a b\nreal wrapped a b []\n")
    via_env = sh(root, "viaenv c")
    assert (via_env.returncode, via_env.stdout) == (3, "wrapper --env c\nreal wrapped --env c []\n")
    selfish = sh(root, "selfish d")
    assert (selfish.returncode, selfish.stdout) == (0, "real selfish --flag d []\n")


def test_shims_work_under_bash_too(root: Path) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    for script in ("dd", "tool x"):
        result = subprocess.run(
            [bash, "-c", script], capture_output=True, text=True, env=shell_env(root), check=False
        )
        assert result.returncode in (126, 7)
    assert [line["event"] for line in log_lines(root)[-2:]] == [
        "command.refused",
        "command.overridden",
    ]


def test_shim_never_fails_because_of_the_log(root: Path) -> None:
    log = root / commands_log(0).lstrip("/")
    log.unlink()
    log.mkdir()  # cannot be appended to
    result = sh(root, "dd; echo after=$?")
    assert result.stdout == "after=126\n"
    assert result.stderr == REFUSED_DD


def test_shim_creates_a_missing_log(root: Path) -> None:
    (root / commands_log(0).lstrip("/")).unlink()
    sh(root, "dd")
    assert [line["command"] for line in log_lines(root)] == ["dd"]


def test_command_logs_are_one_per_uid_appendable_by_that_uid_only(root: Path) -> None:
    directory = root / COMMANDS_LOG_DIR.lstrip("/")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o711  # nobody lists or adds files
    for uid in (0, 1, 1000, 1001):  # every account of the machine's /etc/passwd
        st = (root / commands_log(uid).lstrip("/")).stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o200, uid)


# --- non-root users -----------------------------------------------------------------------------


@pytest.fixture
def world_root() -> Iterator[Path]:
    """A routed root that the user 'nobody' can traverse (pytest's tmp dirs are 0700)."""
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs root and runuser to run commands as another user")
    base = Path(tempfile.mkdtemp(prefix="mien-exec-"))
    base.chmod(0o755)
    try:
        machine = make_machine(base / "root")
        nobody = pwd.getpwnam("nobody")
        with (machine / "etc/passwd").open("a") as passwd:
            passwd.write(f"nobody:x:{nobody.pw_uid}:{nobody.pw_gid}:nobody:/:/bin/sh\n")
        State(machine).close()
        persona = Persona.model_validate({"name": "locked", "restricted_commands": ["dd"]})
        apply_routes(machine, persona)
        for d in (machine, *machine.rglob("*")):
            if d.is_dir():
                d.chmod(d.stat().st_mode | 0o755)
        (machine / "var/lib/mien").chmod(0o700)
        (machine / COMMANDS_LOG_DIR.lstrip("/")).chmod(0o711)
        yield machine
    finally:
        shutil.rmtree(base)


NOBODY = pwd.getpwnam("nobody").pw_uid
PLAIN = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def as_nobody(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "nobody", "--", *argv],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_non_root_shim_is_refused_and_logged(world_root: Path) -> None:
    env = {**shell_env(world_root), "USER": "nobody", "HOME": "/"}
    shim = as_nobody("/bin/sh", "-c", "dd", env=env)
    assert shim.returncode == 126
    assert shim.stderr == "mien: 'dd' is restricted by persona 'locked'\n"
    assert [(line["via"], line["actor"]) for line in log_lines(world_root, NOBODY)] == [
        ("shim", "local:nobody")
    ]
    # Users may append to their command log, not read what others ran.
    assert as_nobody("cat", str(world_root / commands_log(0).lstrip("/")), env=env).returncode
    assert as_nobody("ls", str(world_root / COMMANDS_LOG_DIR.lstrip("/")), env=env).returncode


def test_a_user_cannot_forge_or_erase_anyone_elses_command_log_lines(world_root: Path) -> None:
    logs = world_root / "var/log/mien"
    assert sh(world_root, "dd").returncode == 126  # root runs dd ($USER says "tester")
    # nobody runs dd claiming to be root: the lines say who really ran it.
    env = {**shell_env(world_root), "HOME": "/"}
    claim = as_nobody("/bin/sh", "-c", "USER=root LOGNAME=root dd", env=env)
    assert claim.returncode == 126
    lines = [
        json.loads(line)
        for path in sorted(logs.rglob("*.jsonl"))
        if path.name != "audit.jsonl"
        for line in path.read_text().splitlines()
    ]
    assert sorted(str(line["actor"]) for line in lines) == ["local:nobody", "local:root"]
    # Every log file the user can write holds only their own lines; the others they
    # can neither write, nor replace, nor add to the directory.
    writable = [
        p
        for p in sorted(logs.rglob("*"))
        if as_nobody("test", "-w", str(p), env=PLAIN).returncode == 0
    ]
    assert [p.relative_to(world_root) for p in writable] == [Path(commands_log(NOBODY).lstrip("/"))]
    forged = '{"event": "command.refused", "actor": "local:root", "uid": 0}'
    for target in (commands_log(0), commands_log(1000), f"{COMMANDS_LOG_DIR}/x.jsonl"):
        attempt = as_nobody(
            "/bin/sh",
            "-c",
            'printf "%s\\n" "$1" >> "$2"',
            "sh",
            forged,
            f"{world_root}{target}",
            env=PLAIN,
        )
        assert attempt.returncode != 0
    assert [line["uid"] for line in log_lines(world_root, 0)] == [0]


def test_non_root_mien_exec_falls_back_to_the_command_log(world_root: Path) -> None:
    env = {**shell_env(world_root), "USER": "nobody", "HOME": "/"}
    if as_nobody(sys.executable, "-c", "import mien", env=env).returncode != 0:
        pytest.skip(f"{sys.executable} (and mien) cannot be run by the user 'nobody' here")
    mien = [sys.executable, "-m", "mien.cli.main", "exec", "--root", str(world_root), "--", "dd"]
    result = as_nobody(*mien, env=env)
    assert result.returncode == 126, result.stderr
    assert result.stderr == "mien: 'dd' is restricted by persona 'locked'\n"
    line = log_lines(world_root, NOBODY)[-1]
    assert (line["event"], line["via"], line["actor"]) == (
        "command.refused",
        "mien exec",
        "local:nobody",
    )


def test_exec_without_a_writable_state_database_uses_the_command_log(root: Path) -> None:
    for name in os.listdir(root / "var/lib/mien"):
        if name.startswith("state.db"):
            (root / "var/lib/mien" / name).unlink()
    result = run_mien("exec", "--root", root, "--", "dd")
    assert result.returncode == 126
    line = log_lines(root)[-1]
    assert (line["event"], line["via"], line["command"]) == ("command.refused", "mien exec", "dd")
    assert not (root / "var/lib/mien/state.db").exists()  # exec never creates the database


# --- remote commands: capture mode ---------------------------------------------------------------


def test_capture_runs_and_audits(root: Path) -> None:
    done = run(
        root,
        ["sh", "-c", "echo out; echo err >&2; exit 3"],
        capture=True,
        timeout=30,
        actor="server:cmd-1",
    )
    assert isinstance(done.decision, PassThrough)
    assert (done.status, done.stdout, done.stderr, done.timed_out) == (3, b"out\n", b"err\n", False)
    event, detail = audit_events(root)[-1]
    assert event == "command.run"
    assert detail["status"] == 3 and detail["via"] == "remote" and detail["stdout_bytes"] == 4
    with State(root) as state:
        assert state.audit_records(1)[0].actor == "server:cmd-1"


def test_capture_refuses_and_overrides(root: Path, tmp_path: Path) -> None:
    refused = run(root, ["dd"], capture=True, timeout=30, actor="server:cmd-2")
    assert isinstance(refused.decision, Refuse)
    assert (refused.status, refused.message) == (126, "'dd' is restricted by persona 'test-runner'")
    overridden = run(root, ["tool", "x"], capture=True, timeout=30, actor="server:cmd-3")
    assert isinstance(overridden.decision, Override)
    assert overridden.status == 7
    assert json.loads((tmp_path / "recorded.json").read_text()) == ["--from-override", "x"]
    assert [e for e, _ in audit_events(root)] == [
        "command.refused",
        "command.overridden",
        "command.run",
    ]
    nested = run(root, ["sh", "-c", "mkfs.fake"], capture=True, timeout=30)
    assert nested.status == 126 and b"restricted by persona" in nested.stderr


def test_capture_timeout_kills_the_command(root: Path) -> None:
    started = time.monotonic()
    done = run(root, ["sh", "-c", "echo started; sleep 60"], capture=True, timeout=0.5)
    assert done.timed_out and done.status == 124
    assert done.stdout == b"started\n"
    assert done.message == "timed out after 0.5s: killed"
    assert time.monotonic() - started < 30


def test_capture_caps_output(root: Path) -> None:
    done = run(
        root,
        ["sh", "-c", "head -c 200000 /dev/zero; head -c 10 /dev/zero >&2"],
        capture=True,
        timeout=30,
    )
    assert done.status == 0
    assert len(done.stdout) == 64 * 1024 and done.stdout_dropped == 200000 - 64 * 1024
    assert len(done.stderr) == 10 and done.stderr_dropped == 0
    report = done.report()
    assert report["truncated"] is True
    assert f"{200000 - 64 * 1024} more bytes not kept" in report["stdout"]
    small = run(root, ["sh", "-c", "echo 0123456789"], capture=True, timeout=30, limit=4)
    assert (small.stdout, small.stdout_dropped) == (b"0123", 7)


def test_capture_does_not_wait_for_background_children(root: Path) -> None:
    """The command is done when it exits, even if something it started keeps the pipe."""
    started = time.monotonic()
    done = run(root, ["sh", "-c", "sleep 60 & echo $!"], capture=True, timeout=30)
    pid = int(done.stdout.split()[0])
    try:
        assert done.status == 0 and not done.timed_out
        assert time.monotonic() - started < 20
    finally:
        os.kill(pid, signal.SIGKILL)


def test_capture_status_of_a_signalled_command(root: Path) -> None:
    done = run(root, ["sh", "-c", "kill -TERM $$"], capture=True, timeout=30)
    assert done.status == 128 + signal.SIGTERM


def test_capture_not_found(root: Path) -> None:
    done = run(root, ["no-such-command-xyz"], capture=True, timeout=30)
    assert (done.status, done.message) == (127, "no-such-command-xyz: command not found")
