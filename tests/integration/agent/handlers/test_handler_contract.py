"""The handler contract on real files, processes and programs under a temp root.

* reads go through the ``Context``: which processes run and what an inspection program
  prints are asked of it, cached while a plan is computed and fresh once changes start;
* writes go through the journal: the one write an operation makes itself (the theme's
  keyfile, put back before ``dconf update`` on undo) keeps every byte it needs in the
  operation's data, and a failed apply through the real engine leaves the root as it was;
* a login shell that is not installed and that the persona does not install is refused at
  plan time, before anything changes;
* the built-in handlers run in a fixed, declared order.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from mien.agent import registry
from mien.agent.engine import Engine
from mien.agent.handlers.base import Context, HandlerError
from mien.agent.handlers.programs import RunAs
from mien.agent.handlers.shell import PASSWD, LoginShellHandler
from mien.agent.handlers.theme import COMPILED, KEYFILE, ThemeHandler
from mien.agent.handlers.users import lookup_user
from mien.agent.outcomes import EngineError
from mien.agent.transaction import ApplyFailed
from mien.spec.models import Persona
from tests.support import make_machine, snapshot, tree_diff

HANDLERS_DIR = Path(registry.__file__).parent / "handlers"

needs_chroot = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("chroot") is None or shutil.which("ldd") is None,
    reason="needs root and chroot to run programs inside a temporary root",
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_machine(tmp_path / "root")


def persona(data: dict[str, Any]) -> Persona:
    return Persona.model_validate({"name": "p", **data})


def context(root: Path) -> Context:
    return Context(root, lookup_user(root, "alice"), "p")


def install_program(root: Path, machine_path: str, script: str) -> None:
    host = root / machine_path.lstrip("/")
    host.parent.mkdir(parents=True, exist_ok=True)
    host.write_text(script)
    host.chmod(0o755)


def install_sh(root: Path) -> None:
    """The host's dash and its libraries as ``ROOT/bin/sh``, so scripts run via chroot."""
    dash = shutil.which("dash") or "/bin/dash"
    libs = subprocess.run(["ldd", dash], capture_output=True, text=True, check=True).stdout
    paths = [w for w in libs.split() if w.startswith("/")]
    for source in [dash, *paths]:
        target = root / source.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    (root / "bin").mkdir(exist_ok=True)
    shutil.copy2(dash, root / "bin" / "sh")


# --- reads through the Context -----------------------------------------------------------


def test_no_handler_module_reads_processes_or_runs_programs_itself() -> None:
    """psutil and subprocess are the business of the Context and its program runner only."""
    offenders = []
    for path in sorted(HANDLERS_DIR.glob("*.py")):
        if path.name in ("base.py", "programs.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}" for n in names if n.split(".")[0] in ("psutil", "subprocess")
            ]
    assert offenders == []


def test_process_running_asks_the_running_system_once_per_plan() -> None:
    name = f"mien-{uuid.uuid4().hex[:8]}"  # a process name nothing else has
    ctx = context_on_slash()
    assert ctx.process_running({name}) is False
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import ctypes,time; ctypes.CDLL(None).prctl(15, b'{name}'); time.sleep(30)",
        ]
    )
    try:
        deadline = 50
        while deadline and not _named(name):
            deadline -= 1
            subprocess.run(["sleep", "0.1"], check=True)
        assert _named(name)
        assert ctx.process_running({name}) is False  # the plan's answer does not move
        ctx.stop_caching()
        assert ctx.process_running({name, "no-such-daemon"}) is True
    finally:
        proc.kill()
        proc.wait()


def _named(name: str) -> bool:
    import psutil

    return any(p.info.get("name") == name for p in psutil.process_iter(["name"]))


def context_on_slash() -> Context:
    from mien.agent.handlers.users import UserInfo

    return Context(Path("/"), UserInfo("root", 0, 0, "/root", "/bin/sh"), "p")


def test_no_process_runs_in_a_root_that_is_not_running(root: Path) -> None:
    assert context(root).process_running({Path(sys.executable).name, "python3"}) is False


COUNTING = """\
#!/bin/sh
# Reports on the root and counts its runs, so the test sees each launch.
echo run >> /tmp/inspections
[ "$1" = fail ] && { echo "broken here" >&2; exit 3; }
echo "ms-python.python"
echo "home=$HOME"
"""


@needs_chroot
def test_inspect_runs_inside_the_root_once_per_plan(root: Path) -> None:
    install_sh(root)
    install_program(root, "/usr/bin/report", COUNTING)
    (root / "tmp").mkdir(mode=0o1777)
    (root / "tmp").chmod(0o1777)
    runs = root / "tmp" / "inspections"
    ctx = context(root)
    alice = RunAs.of(ctx)
    first = ctx.inspect(["/usr/bin/report"], user=alice, what="report")
    assert first.splitlines() == ["ms-python.python", "home=/home/alice"]
    assert ctx.inspect(["/usr/bin/report"], user=alice) == first
    assert runs.read_text() == "run\n"  # the second answer came from the plan's cache
    assert ctx.inspect(["/usr/bin/report"]).splitlines()[1] == "home=/root"
    assert runs.read_text() == "run\n" * 2  # another user is another question
    ctx.stop_caching()
    ctx.inspect(["/usr/bin/report"], user=alice)
    assert runs.read_text() == "run\n" * 3
    with pytest.raises(HandlerError, match="report fail: exited with status 3: broken here"):
        ctx.inspect(["/usr/bin/report", "fail"], what="report fail")


# --- writes through the journal -----------------------------------------------------------

DCONF = """\
#!/bin/sh
# Stand-in for dconf: "update" compiles /etc/dconf/db/local.d/* into /etc/dconf/db/local.
[ "$1" = update ] || exit 2
: > /etc/dconf/db/local
for f in /etc/dconf/db/local.d/*; do
    [ -f "$f" ] || continue
    while IFS= read -r line; do printf '%s\\n' "$line" >> /etc/dconf/db/local; done < "$f"
done
"""


@needs_chroot
def test_theme_undo_puts_back_any_bytes_from_the_operation_data(root: Path) -> None:
    install_sh(root)
    install_program(root, "/usr/bin/dconf", DCONF)
    keyfile = root / KEYFILE.lstrip("/")
    keyfile.parent.mkdir(parents=True)
    odd = b"[org/gnome/desktop/interface]\n# caf\xe9 (latin-1, by root)\ncolor-scheme='x'\n"
    keyfile.write_bytes(odd)
    keyfile.chmod(0o640)
    handler = ThemeHandler()
    plan = handler.plan(context(root), persona({"os_settings": {"theme": "dark"}}))
    [op] = plan.operations
    spec = next(f for f in plan.files if f.path == KEYFILE)
    assert spec.desired is not None and spec.desired.content is not None
    keyfile.write_bytes(spec.desired.content)  # what the engine writes before the operation
    ctx = context(root)
    ctx.stop_caching()
    handler.perform(ctx, op.data)
    assert b"prefer-dark" in (root / COMPILED.lstrip("/")).read_bytes()
    handler.revert(ctx, op.data)
    assert keyfile.read_bytes() == odd
    assert keyfile.stat().st_mode & 0o777 == 0o640
    assert (root / COMPILED.lstrip("/")).read_bytes() == odd


@needs_chroot
def test_failed_apply_undoes_the_theme_and_its_compiled_database(
    root: Path, tmp_path: Path
) -> None:
    install_sh(root)
    install_program(root, "/usr/bin/dconf", DCONF)
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "dark.yaml").write_text("name: dark\nos_settings: {theme: dark}\n")
    (personas / "light.yaml").write_text(
        "name: light\nos_settings: {theme: light}\npost_activation_script: 'exit 3'\n"
    )
    engine = Engine(root, user="alice", personas=[personas])
    engine.apply("dark")
    compiled = root / COMPILED.lstrip("/")
    assert b"prefer-dark" in compiled.read_bytes()
    before = snapshot(root)
    with pytest.raises(ApplyFailed, match="exit"):
        engine.apply("light")
    assert tree_diff(before, snapshot(root)) == []  # compiled database included


# --- refusing what would leave the machine unusable ---------------------------------------


def test_a_shell_neither_installed_nor_installed_by_the_persona_is_refused(root: Path) -> None:
    passwd = (root / "etc/passwd").read_bytes()
    with pytest.raises(HandlerError) as caught:
        LoginShellHandler().plan(context(root), persona({"os_settings": {"terminal_shell": "zsh"}}))
    message = str(caught.value)
    assert message.startswith("os_settings.terminal_shell: /bin/zsh is listed")
    assert "not installed" in message and "'zsh'" in message and "required_applications" in message
    # The persona that installs it may set it; one that installs another package may not.
    allowed = LoginShellHandler().plan(
        context(root),
        persona(
            {"os_settings": {"terminal_shell": "zsh"}, "required_applications": [{"name": "zsh"}]}
        ),
    )
    assert [n.status for n in allowed.notes] == ["applied"]
    assert [dict(op.data)["new"] for op in allowed.operations] == ["/usr/bin/zsh"]
    with pytest.raises(HandlerError, match="terminal_shell: /bin/zsh"):
        LoginShellHandler().plan(
            context(root),
            persona(
                {
                    "os_settings": {"terminal_shell": "zsh"},
                    "required_applications": [{"name": "fish"}],
                }
            ),
        )
    assert (root / "etc/passwd").read_bytes() == passwd


def test_the_refusal_stops_the_whole_apply_before_any_change(root: Path, tmp_path: Path) -> None:
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "z.yaml").write_text(
        "name: z\nos_settings: {terminal_shell: zsh, theme: dark}\n"
        "environment_variables: {GREETING: hi}\n"
    )
    before = snapshot(root, include_state=True)
    with pytest.raises(EngineError, match=r"os_settings\.terminal_shell: /bin/zsh"):
        Engine(root, user="alice", personas=[personas]).apply("z")
    assert not (root / "etc/profile.d/mien.sh").exists()
    assert b"/home/alice:/bin/bash" in (root / PASSWD.lstrip("/")).read_bytes()
    changed = [d for d in tree_diff(before, snapshot(root)) if "var/lib/mien" not in d]
    assert changed == []


# --- order --------------------------------------------------------------------------------

BUILT_IN_ORDER = [
    ("packages_apt", 10),
    ("packages_pip", 20),
    ("packages_npm", 25),
    ("ide_extensions", 30),
    ("environment", 40),
    ("browser_extensions", 50),
    ("commands", 50),
    ("config_files", 50),
    ("logging", 50),
    ("login_shell", 50),
    ("theme", 50),
    ("schedules", 60),
    ("adaptation", 85),
    ("settings_store", 90),
]


def test_built_in_handlers_run_in_the_declared_order() -> None:
    assert [(h.name, registry.order_of(h)) for h in registry.handlers()] == BUILT_IN_ORDER
    # Every built-in declares its step itself rather than falling back to the default.
    assert all("order" in vars(type(h)) for h in registry.handlers())
    # ... and the registry's documentation names each step.
    for name, order in BUILT_IN_ORDER:
        assert f"``{name}``" in (registry.__doc__ or ""), name
        assert f"* {order} " in (registry.__doc__ or "") or f"{order} " in (registry.__doc__ or "")
