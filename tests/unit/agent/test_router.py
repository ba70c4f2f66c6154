"""The command router's decisions: table in, decision out (no I/O).

Each rule is tested on its own, then the policy as a whole on a table shaped like seed
001's test-runner persona: overrides, restricted names and patterns, basenames and paths.
"""

from __future__ import annotations

import json

import pytest

from mien.agent.router import (
    OVERRIDES_DIR,
    POLICY,
    Completed,
    Overridden,
    Override,
    PassThrough,
    Reentered,
    Refuse,
    Replacement,
    Restricted,
    RouteError,
    RoutingTable,
    refusal_message,
    routed_from,
)
from mien.spec.models import Persona

ENV_PYTEST = ("/usr/bin/env", "python3", "-m", "pytest", "-p", "no:cacheprovider")
DEPLOY = (f"{OVERRIDES_DIR}/deploy",)

TABLE = RoutingTable(
    "test-runner",
    {
        "pytest": Replacement(ENV_PYTEST),
        "deploy": Replacement(DEPLOY, inline=True),
        "git": Replacement(("git", "-c", "color.ui=never")),
    },
    ("shutdown", "reboot", "mkfs*", "dd"),
)
EMPTY = RoutingTable(None)


# (argv, routed chain, expected kind, expected argv or matched pattern)
CASES = [
    (["dd", "if=/dev/zero"], "", Refuse, "dd"),
    (["/bin/dd"], "", Refuse, "dd"),
    (["/usr/sbin/shutdown", "-h", "now"], "", Refuse, "shutdown"),
    (["mkfs"], "", Refuse, "mkfs*"),
    (["mkfs.ext4", "/dev/sdb1"], "", Refuse, "mkfs*"),
    (["./mkfs.xfs"], "", Refuse, "mkfs*"),
    (["dd"], "dd", Refuse, "dd"),  # a restriction holds inside an override chain too
    (["xmkfs"], "", PassThrough, ("xmkfs",)),
    (["Shutdown"], "", PassThrough, ("Shutdown",)),  # case matters, as on Linux
    (["ddrescue"], "", PassThrough, ("ddrescue",)),
    (["ls", "-l"], "", PassThrough, ("ls", "-l")),
    (["pytest", "-k", "x y"], "", Override, (*ENV_PYTEST, "-k", "x y")),
    (["/usr/local/bin/pytest"], "", Override, ENV_PYTEST),
    (["deploy", "prod"], "", Override, (*DEPLOY, "prod")),
    (["/usr/bin/git", "status"], "", Override, ("git", "-c", "color.ui=never", "status")),
    (["git", "status"], "pytest", Override, ("git", "-c", "color.ui=never", "status")),
    (["git", "status"], "pytest:git", PassThrough, ("git", "status")),
    (["ls"], "ls", PassThrough, ("ls",)),  # only overridden commands re-enter
]


@pytest.mark.parametrize(("argv", "chain", "kind", "expected"), CASES)
def test_route(argv: list[str], chain: str, kind: type, expected: object) -> None:
    decision = TABLE.route(argv, routed_from({"MIEN_ROUTED": chain}))
    assert isinstance(decision, kind)
    if isinstance(decision, Refuse):
        assert decision.pattern == expected
        assert decision.status == 126
        assert decision.reason == f"'{decision.command}' is restricted by persona 'test-runner'"
    else:
        assert isinstance(decision, Override | PassThrough)
        assert decision.argv == expected


def test_reentry_is_marked_so_the_chain_ends() -> None:
    decision = TABLE.route(["git"], frozenset({"git"}))
    assert isinstance(decision, PassThrough) and decision.reentered
    plain = TABLE.route(["ls"], frozenset({"git"}))
    assert isinstance(plain, PassThrough) and not plain.reentered


@pytest.mark.parametrize("argv", [["dd"], ["pytest"], ["/usr/bin/git", "x"], ["mkfs.ext4"]])
def test_empty_table_passes_everything_through(argv: list[str]) -> None:
    decision = EMPTY.route(argv)
    assert isinstance(decision, PassThrough)
    assert decision.argv == tuple(argv)
    assert "no persona routes commands" in decision.reason


def test_table_without_rules_names_its_persona() -> None:
    decision = RoutingTable("plain").route(["ls"])
    assert decision.reason == "no rule of persona 'plain' matches 'ls'"


@pytest.mark.parametrize("argv", [[], [""], ["/"], ["/usr/bin/"]])
def test_no_command_is_an_error(argv: list[str]) -> None:
    with pytest.raises(RouteError, match="no command given"):
        TABLE.route(argv)


def test_refusal_message_format() -> None:
    assert refusal_message("dd", "locked-down") == "'dd' is restricted by persona 'locked-down'"


def test_override_reason_says_what_runs() -> None:
    decision = TABLE.route(["pytest"])
    assert decision.reason == (
        "'pytest' is overridden by persona 'test-runner': "
        "runs /usr/bin/env python3 -m pytest -p no:cacheprovider"
    )
    inline = TABLE.route(["deploy"])
    assert inline.reason.endswith(f"runs inline script {OVERRIDES_DIR}/deploy")


# --- each rule on its own -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "command", "chain", "decides"),
    [
        (Restricted(), "dd", frozenset(), Refuse),
        (Restricted(), "mkfs.vfat", frozenset(), Refuse),
        (Restricted(), "pytest", frozenset(), None),
        (Reentered(), "git", frozenset({"git"}), PassThrough),
        (Reentered(), "git", frozenset(), None),
        (Reentered(), "ls", frozenset({"ls"}), None),
        (Overridden(), "git", frozenset(), Override),
        (Overridden(), "dd", frozenset(), None),
    ],
)
def test_each_rule(rule: object, command: str, chain: frozenset[str], decides: type | None) -> None:
    assert hasattr(rule, "decide") and hasattr(rule, "name")
    decision = rule.decide(TABLE, command, (command,), chain)
    if decides is None:
        assert decision is None
    else:
        assert isinstance(decision, decides)
        assert decision.reason


def test_policy_order_restriction_first() -> None:
    assert [r.name for r in POLICY] == ["restricted", "reentered", "overridden"]
    both = RoutingTable("p", {"mkfs.ext4": Replacement(("/bin/true",))}, ("mkfs*",))
    assert isinstance(both.route(["mkfs.ext4"]), Refuse)


# --- replacements ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "argv", "inline"),
    [
        ("/opt/tools/git-audited", ("/opt/tools/git-audited",), False),
        ("/usr/bin/env python3 -m pytest -p no:cacheprovider", ENV_PYTEST, False),
        ("hub --flag 'two words'", ("hub", "--flag", "two words"), False),
        ("#!/bin/bash\necho hi\n", (f"{OVERRIDES_DIR}/cmd",), True),
        ("#!/bin/sh", (f"{OVERRIDES_DIR}/cmd",), True),
        ("echo one\necho two", (f"{OVERRIDES_DIR}/cmd",), True),
    ],
)
def test_replacement_parse(value: str, argv: tuple[str, ...], inline: bool) -> None:
    parsed = Replacement.parse("cmd", value)
    assert parsed.argv == argv
    assert parsed.inline is inline
    if inline:
        assert parsed.script is not None and parsed.script.startswith("#!")
        assert parsed.script.endswith("\n")


@pytest.mark.parametrize(
    ("value", "reenters"),
    [
        ("/opt/tools/git-audited", True),
        ("/usr/bin/env git -c x", True),
        ("#!/bin/sh\nexec git", True),
        ("git -c core.pager=cat", False),
        ("/usr/bin/git -c core.pager=cat", False),
    ],
)
def test_which_replacements_may_route_back(value: str, reenters: bool) -> None:
    assert Replacement.parse("git", value).may_reenter("git") is reenters


def test_inline_script_without_interpreter_line_runs_with_sh() -> None:
    parsed = Replacement.parse("cmd", "echo one\necho two")
    assert parsed.script == "#!/bin/sh\necho one\necho two\n"
    kept = Replacement.parse("cmd", "#!/usr/bin/python3\nprint(1)\n")
    assert kept.script == "#!/usr/bin/python3\nprint(1)\n"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("'unbalanced", "is not a valid command line"),
        ("   ", "the replacement command line is empty"),
        ("FOO=1 git", "looks like an environment assignment"),
        ("bin/tool", "must be an absolute path or a command name"),
        ("./tool --x", "must be an absolute path or a command name"),
    ],
)
def test_bad_replacements_name_the_field(value: str, message: str) -> None:
    with pytest.raises(RouteError, match=message) as err:
        Replacement.parse("git", value)
    assert str(err.value).startswith("command_overrides.git: ")


def test_from_persona() -> None:
    persona = Persona.model_validate(
        {
            "name": "test-runner",
            "command_overrides": {"pytest": " ".join(ENV_PYTEST), "deploy": "#!/bin/sh\necho\n"},
            "restricted_commands": ["shutdown", "mkfs*"],
        }
    )
    table = RoutingTable.from_persona(persona)
    assert table.persona == "test-runner"
    assert table.restricted == ("shutdown", "mkfs*")
    assert table.overrides["pytest"].argv == ENV_PYTEST
    assert table.overrides["deploy"].inline
    with pytest.raises(TypeError):
        table.overrides["x"] = Replacement(("/bin/true",))  # type: ignore[index]


def test_override_key_must_not_be_a_pattern() -> None:
    persona = Persona.model_validate({"name": "p", "command_overrides": {"py*": "python3"}})
    with pytest.raises(RouteError, match=r"command_overrides\.py\*: an override needs an exact"):
        RoutingTable.from_persona(persona)


# --- routes.json ----------------------------------------------------------------------------


def test_json_round_trip() -> None:
    back = RoutingTable.from_json(TABLE.to_json(), "routes.json")
    assert back.persona == TABLE.persona
    assert back.restricted == TABLE.restricted
    assert dict(back.overrides) == dict(TABLE.overrides)
    assert json.loads(TABLE.to_json())["format"] == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "not a routing table of format 1"),
        ('{"format": 2}', "not a routing table of format 1"),
        ('{"format": 1, "persona": 3, "overrides": {}, "restricted": []}', "'persona' must be"),
        ('{"format": 1, "persona": "p", "overrides": [], "restricted": []}', "'overrides' must"),
        ('{"format": 1, "persona": "p", "overrides": {}, "restricted": [1]}', "'restricted' must"),
        (
            '{"format": 1, "persona": "p", "overrides": {"git": {"argv": []}}, "restricted": []}',
            "overrides.git.argv must be a list of strings",
        ),
    ],
)
def test_bad_routes_file_names_the_file_and_the_fix(text: str, message: str) -> None:
    with pytest.raises(RouteError, match=message) as err:
        RoutingTable.from_json(text, "/etc/mien/routes.json")
    assert str(err.value).startswith("/etc/mien/routes.json: ")
    assert "re-apply the persona" in str(err.value)


# --- results --------------------------------------------------------------------------------


def test_report_says_when_output_was_cut() -> None:
    decision = TABLE.route(["ls"])
    done = Completed(decision, 0, stdout=b"x" * 10, stdout_dropped=5, stderr=b"\xffok")
    report = done.report()
    assert report["truncated"] is True
    assert report["stdout"].endswith("[mien: output truncated: 5 more bytes not kept]\n")
    assert report["stderr"] == "\ufffdok"
    assert report["decision"] == "passthrough"
    whole = Completed(decision, 3, stdout=b"all").report()
    assert whole["truncated"] is False and whole["stdout"] == "all" and whole["status"] == 3
