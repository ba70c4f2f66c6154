"""The ``commands`` handler on real roots: what it plans (routes, shims, override scripts,
the command log), and, through the real engine, that switching personas
replaces the shims and rollback restores them byte for byte.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from mien.agent.engine import Engine
from mien.agent.handlers import command_log
from mien.agent.handlers.base import Context, HandlerError
from mien.agent.handlers.commands import CommandRoutesHandler
from mien.agent.handlers.users import UserInfo
from mien.agent.router import (
    COMMANDS_LOG_DIR,
    LEGACY_COMMANDS_LOG,
    OVERRIDES_DIR,
    ROUTES_PATH,
    SHIMS_DIR,
    Replacement,
    RoutingTable,
    commands_log,
)
from mien.spec.models import Persona
from tests.support import make_machine

HANDLER = CommandRoutesHandler()


def context(root: Path, name: str = "p") -> Context:
    return Context(root, UserInfo("alice", 1000, 1000, "/home/alice", "/bin/sh"), name)


def persona(**fields: object) -> Persona:
    return Persona.model_validate({"name": "p", **fields})


@pytest.fixture
def root(tmp_path: Path) -> Path:
    machine = make_machine(tmp_path / "root")
    for name in ("mkfs", "mkfs.ext4", "mkfs.vfat", "git"):
        target = machine / "usr/sbin" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("#!/bin/sh\n")
        target.chmod(0o755)
    (machine / "usr/sbin/mkfs.bad name").write_text("")  # not a plain name: never shimmed
    (machine / "usr/sbin/mkfs.dir").mkdir()
    return machine


def test_plan_files(root: Path) -> None:
    p = persona(
        command_overrides={"git": "/opt/git-audited --log", "deploy": "echo a\necho b"},
        restricted_commands=["dd", "mkfs*"],
    )
    plan = HANDLER.plan(context(root), p)
    files = {f.path: f.desired for f in plan.files}
    assert sorted(files) == sorted(
        [
            ROUTES_PATH,
            f"{OVERRIDES_DIR}/deploy",
            *(
                f"{SHIMS_DIR}/{n}"
                for n in ("dd", "deploy", "git", "mkfs", "mkfs.ext4", "mkfs.vfat")
            ),
        ]
    )
    for path, state in files.items():
        assert state is not None and state.content is not None
        expected = 0o755 if path.startswith("/usr/local/lib/mien/") else 0o644
        assert state.mode == expected, path
        if path.startswith(SHIMS_DIR):
            assert state.content.startswith(b"#!/bin/sh\n")
            assert b"python" not in state.content.lower()
    routes = files[ROUTES_PATH]
    assert routes is not None and routes.content is not None
    table = RoutingTable.from_json(routes.content.decode(), ROUTES_PATH)
    assert (table.persona, table.restricted) == ("p", ("dd", "mkfs*"))
    assert dict(table.overrides) == {
        "git": Replacement(("/opt/git-audited", "--log")),
        "deploy": Replacement((f"{OVERRIDES_DIR}/deploy",), inline=True),
    }
    script = files[f"{OVERRIDES_DIR}/deploy"]
    assert script is not None and script.content == b"#!/bin/sh\necho a\necho b\n"
    assert [(op.handler, op.key, dict(op.data)) for op in plan.operations] == [
        (
            "commands",
            COMMANDS_LOG_DIR,
            {"path": COMMANDS_LOG_DIR, "uids": [0, 1, 1000, 1001], "legacy_mode": None},
        )
    ]


def test_plan_notes(root: Path) -> None:
    p = persona(
        command_overrides={
            "git": "/opt/git-audited",
            "ls": "git --no-pager",
            "mkfs.ext4": "/bin/true",
        },
        restricted_commands=["mkfs*", "zz*", "dd"],
    )
    plan = HANDLER.plan(context(root), p)
    notes = {(n.setting, n.status): n.message for n in plan.notes}
    assert (
        "but /opt/git-audited is not installed yet" in notes[("command_overrides.git", "pending")]
    )
    assert "exit status 127" in notes[("command_overrides.git", "pending")]
    assert notes[("command_overrides.ls", "applied")] == "'ls' runs git --no-pager"
    assert "the restriction wins" in notes[("command_overrides.mkfs.ext4", "failed")]
    assert [n.message for n in plan.notes if n.setting == "restricted_commands"] == [
        "pattern 'mkfs*': shims for mkfs, mkfs.ext4, mkfs.vfat; mien exec refuses any match",
        "pattern 'zz*': shims for none installed now; mien exec refuses any match",
        "refused by mien exec and shell shims (exit status 126): dd",
    ]
    # An override whose command is also restricted gets the refusing shim only.
    shim = [f for f in plan.files if f.path == f"{SHIMS_DIR}/mkfs.ext4"]
    assert len(shim) == 1 and shim[0].setting == "restricted_commands"


def test_persona_without_routes_only_writes_the_table(root: Path) -> None:
    plan = HANDLER.plan(context(root), persona())
    assert [f.path for f in plan.files] == [ROUTES_PATH]
    assert plan.operations == [] and plan.notes == []


def _all_logs(root: Path) -> None:
    for uid in command_log.accounts(context(root)):
        log = root / commands_log(uid).lstrip("/")
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")


def test_existing_logs_need_no_operation(root: Path) -> None:
    _all_logs(root)
    assert HANDLER.plan(context(root), persona(restricted_commands=["dd"])).operations == []


def test_the_shared_log_of_older_mien_is_made_root_only(root: Path) -> None:
    _all_logs(root)
    legacy = root / LEGACY_COMMANDS_LOG.lstrip("/")
    legacy.write_text('{"event": "old"}\n')
    legacy.chmod(0o622)
    ops = HANDLER.plan(context(root), persona(restricted_commands=["dd"])).operations
    assert [dict(op.data) for op in ops] == [
        {"path": COMMANDS_LOG_DIR, "uids": [], "legacy_mode": 0o622}
    ]
    HANDLER.perform(context(root), ops[0].data)
    assert stat.S_IMODE(legacy.stat().st_mode) == 0o600
    assert legacy.read_text() == '{"event": "old"}\n'
    HANDLER.revert(context(root), ops[0].data)
    assert stat.S_IMODE(legacy.stat().st_mode) == 0o622


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"py*": "python3"}, r"command_overrides\.py\*: an override needs an exact command name"),
        ({"git": "'open"}, r"command_overrides\.git: .* is not a valid command line"),
        ({"git": "GIT_PAGER=cat git"}, "looks like an environment assignment"),
    ],
)
def test_bad_overrides_refuse_the_plan(root: Path, overrides: dict[str, str], message: str) -> None:
    with pytest.raises(HandlerError, match=message):
        HANDLER.plan(context(root), persona(command_overrides=overrides))


def test_log_operation_perform_and_revert(root: Path) -> None:
    ctx = context(root)
    data = {"path": COMMANDS_LOG_DIR, "uids": [0, 1000], "legacy_mode": None}
    log = root / commands_log(1000).lstrip("/")
    old = os.umask(0o077)
    try:
        HANDLER.perform(ctx, data)
    finally:
        os.umask(old)
    assert stat.S_IMODE(log.stat().st_mode) == 0o200
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o711
    if os.geteuid() == 0:
        assert log.stat().st_uid == 1000
    log.write_text('{"event": "x"}\n')
    HANDLER.perform(ctx, data)  # never truncates
    assert log.read_text() == '{"event": "x"}\n'
    HANDLER.revert(ctx, data)  # never deletes what was logged
    assert log.exists()
    assert not (root / commands_log(0).lstrip("/")).exists()
    log.write_text("")
    HANDLER.revert(ctx, data)
    assert not log.exists()
    HANDLER.revert(ctx, data)  # idempotent
    with pytest.raises(HandlerError):
        HANDLER.perform(ctx, {"path": "/etc/passwd"})
    with pytest.raises(HandlerError):
        HANDLER.perform(ctx, {"path": COMMANDS_LOG_DIR, "uids": ["../x"], "legacy_mode": None})


# --- through the engine -------------------------------------------------------------------------

ONE = {
    "name": "one",
    "command_overrides": {"deploy": "#!/bin/sh\necho one\n", "git": "/bin/true"},
    "restricted_commands": ["dd", "mkfs*"],
}
TWO = {"name": "two", "restricted_commands": ["shutdown"]}


def shims(root: Path) -> dict[str, bytes]:
    d = root / SHIMS_DIR.lstrip("/")
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())} if d.is_dir() else {}


def test_switching_personas_replaces_the_shims(root: Path, tmp_path: Path) -> None:
    personas = tmp_path / "personas"
    personas.mkdir()
    for doc in (ONE, TWO):
        (personas / f"{doc['name']}.json").write_text(json.dumps(doc))
    # The log exists already, so the plan has no operation (operations are performed
    # through the handler registry, which this test does not depend on).
    _all_logs(root)
    engine = Engine(root, user="alice", personas=[personas], handlers=[HANDLER])

    engine.apply("one")
    first = shims(root)
    assert sorted(first) == ["dd", "deploy", "git", "mkfs", "mkfs.ext4", "mkfs.vfat"]
    assert (root / OVERRIDES_DIR.lstrip("/") / "deploy").is_file()

    engine.apply("two")
    assert sorted(shims(root)) == ["shutdown"]
    assert not (root / OVERRIDES_DIR.lstrip("/") / "deploy").exists()
    routes = json.loads((root / ROUTES_PATH.lstrip("/")).read_text())
    assert (routes["persona"], routes["restricted"]) == ("two", ["shutdown"])

    engine.rollback()
    assert shims(root) == first

    engine.rollback(0)
    assert shims(root) == {}
    assert not (root / ROUTES_PATH.lstrip("/")).exists()
    assert (root / commands_log(0).lstrip("/")).exists()  # not managed: rollback keeps it
