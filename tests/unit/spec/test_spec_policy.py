"""The fleet policy language: what validates, and where each problem is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from mien.spec.errors import SpecError
from mien.spec.policy import load_policy_file, parse_policy


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_policy(text, "fleet.yaml")
    return [str(p) for p in caught.value.problems]


def test_a_policy_in_canonical_form() -> None:
    doc = parse_policy(
        "trust:\n"
        "  - selector: {env: prod, role: [web, db]}\n"
        "    max: {process_control: none}\n"
        "switching:\n"
        "  - {users: [alice], groups: [dev], personas: ['*']}\n"
        "noncompliance_window: 90m\n",
        "fleet.yaml",
    )
    assert doc.data == {
        "trust": [
            {"selector": {"env": "prod", "role": ["web", "db"]}, "max": {"process_control": "none"}}
        ],
        "switching": [{"selector": {}, "users": ["alice"], "groups": ["dev"], "personas": ["*"]}],
        "noncompliance_window": "1h30m",
    }
    assert doc.policy.noncompliance_window.seconds == 5400


def test_no_switching_list_is_not_an_empty_one() -> None:
    assert "switching" not in parse_policy("trust: []\n").data
    assert parse_policy("switching: []\n").data["switching"] == []
    assert parse_policy("{}").data == {"trust": [], "noncompliance_window": "1d"}
    assert problems(" \n") == [
        "fleet.yaml:1:1: (document): empty document: expected a fleet policy (trust:, switching:)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "trust:\n  - max: {process_contrl: none}\n",
            "fleet.yaml:2:11: trust[0].max.process_contrl: must be one of:",
        ),
        (
            "trust:\n  - max: {network_access: total}\n",
            "fleet.yaml:2:27: trust[0].max.network_access: must be one of: 'none'",
        ),
        ("trust:\n  - selector: {env: prod}\n", "fleet.yaml:2:5: trust[0].max: required field"),
        (
            "trust:\n  - selector: {'bad key': x}\n    max: {process_control: low}\n",
            "trust[0].selector: 'bad key' is not a tag key",
        ),
        (
            "switching:\n  - users: [Alice!]\n    personas: [web]\n",
            "fleet.yaml:2:12: switching[0].users: 'Alice!' is not a user name",
        ),
        ("switching:\n  - users: [alice]\n", "switching[0].personas: required field is missing"),
        ("noncompliance_window: soon\n", "fleet.yaml:1:23: noncompliance_window:"),
        (
            "noncompliance_window: 1e400\n",
            "fleet.yaml:1:23: noncompliance_window: a duration must be a finite",
        ),
        ("noncompliance_window: 100000d\n", "fleet.yaml:1:23: noncompliance_window: must be"),
        ("noncompliance_window: 0\n", "fleet.yaml:1:23: noncompliance_window: must be"),
        ("trusts: []\n", "fleet.yaml:1:1: trusts: unknown field; did you mean 'trust'?"),
        (
            "trust:\n  - selecter: {a: b}\n    max: {network_access: low}\n",
            "fleet.yaml:2:5: trust[0].selecter: unknown field; did you mean 'selector'?",
        ),
        ("- just a list\n", "fleet.yaml:1:1: (document): a policy is a mapping"),
    ],
)
def test_problems_name_line_and_field(text: str, expected: str) -> None:
    found = problems(text)
    assert any(expected in p for p in found), found


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file"):
        load_policy_file(tmp_path / "nope.yaml")
