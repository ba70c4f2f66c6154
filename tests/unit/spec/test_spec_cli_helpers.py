"""The pure parts of ``mien validate/render/explain``: key paths, summaries, explain output.

The commands themselves run as real processes in ``tests/integration/test_spec_cli.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from mien.cli.language.commands import summary
from mien.cli.language.explain import display_key, explain_lines, explain_report, key_path
from mien.spec.compose import resolve
from mien.spec.errors import Problem
from tests.unit.spec.spec_helpers import doc, finder

BASE = (
    "base.yaml",
    "name: base\nos_settings: {theme: light, editor: vim}\nrestricted_commands: [reboot, halt]\n",
)
LEAF = """\
name: dev
extends: base
os_settings: {theme: dark}
labels: {team: platform}
adaptation_rules:
  - name: cpu
    when: metrics.cpu_percent > 90.0
    then: [{action: scale, cpu: 4}]
"""
OVERLAY = "os_settings: {editor: null}\nrestricted_commands: [shutdown]\n"


def resolved() -> Any:
    return resolve(doc(LEAF, "dev.yaml"), finder(BASE), [doc(OVERLAY, "eu.yaml", overlay=True)])


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("os_settings.theme", ("os_settings", "theme")),
        ("adaptation_rules[0].when", ("adaptation_rules", 0, "when")),
        ("adaptation_rules.0.when", ("adaptation_rules", 0, "when")),
        ("adaptation_rules[-1]", ("adaptation_rules", -1)),
        ("restricted_commands[5]", ("restricted_commands", 5)),
        ('labels."a.b"', ("labels", "a.b")),
        ("labels.0", ("labels", "0")),  # a map key that looks like a number stays a string
        ("  os_settings  ", ("os_settings",)),
    ],
)
def test_key_path(text: str, path: tuple[Any, ...]) -> None:
    assert key_path(text, resolved().data) == path


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (("os_settings", "theme"), "os_settings.theme"),
        (("adaptation_rules", 0, "when"), "adaptation_rules[0].when"),
        (
            ("application_configuration", "app", "values", "a.b"),
            'application_configuration.app.values."a.b"',
        ),
    ],
)
def test_display_key(path: tuple[Any, ...], text: str) -> None:
    assert display_key(path) == text


def _p(source: str, severity: str = "error") -> Problem:
    return Problem(source, 1, 1, ("x",), "m", severity)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("reports", "text"),
    [
        ([("a", []), ("b", [])], "2 files valid"),
        ([("a", [])], "1 file valid"),
        ([("a", [_p("a", "warning")])], "1 file valid, 1 warning"),
        ([("a", [_p("a"), _p("a"), _p("a")]), ("b", [])], "3 problems in 1 file"),
        (
            [("a", [_p("a")]), ("b", [_p("b"), _p("b", "warning"), _p("b", "warning")])],
            "2 problems in 2 files, 2 warnings",
        ),
        ([("a", [_p("a")])], "1 problem in 1 file"),
    ],
)
def test_summary(reports: list[tuple[str, list[Problem]]], text: str) -> None:
    assert summary(reports) == text


EXPLAIN: list[tuple[str, list[str]]] = [
    (
        "os_settings.theme",
        ["os_settings.theme: dark", "set by dev.yaml:3:22", "overrode base.yaml:2:22 (light)"],
    ),
    (
        "os_settings.editor",
        [
            "os_settings.editor: (deleted)",
            "deleted by eu.yaml:1:23",
            "overrode base.yaml:2:37 (vim)",
        ],
    ),
    (
        "os_settings",
        [
            "os_settings:",
            "  theme: dark",
            "os_settings.theme set by dev.yaml:3:22",
            "os_settings.theme overrode base.yaml:2:22 (light)",
            "os_settings.editor deleted by eu.yaml:1:23",
            "os_settings.editor overrode base.yaml:2:37 (vim)",
        ],
    ),
    (
        "restricted_commands[0]",
        [
            "restricted_commands[0]: shutdown",
            "set by eu.yaml:2:23 (with all of restricted_commands)",
            "overrode base.yaml:3:23 (reboot)",
        ],
    ),
    (
        "restricted_commands[1]",
        [],  # past the end of the effective list: not set
    ),
    (
        "adaptation_rules[0].then",
        [
            "adaptation_rules[0].then:",
            "- action: scale",
            "  cpu: 4",
            "set by dev.yaml:8:11 (with all of adaptation_rules)",
        ],
    ),
    (
        "resource_requirements.priority",
        [
            "resource_requirements.priority: 0",
            "not set by any document: this is the language's default",
        ],
    ),
]


@pytest.mark.parametrize(("key", "lines"), EXPLAIN)
def test_explain_lines(key: str, lines: list[str]) -> None:
    r = resolved()
    report = explain_report(r, key_path(key, r.data))
    if not lines:
        assert report is None
    else:
        assert report is not None
        assert explain_lines(report) == lines


def test_explain_report_is_data() -> None:
    r = resolved()
    report = explain_report(r, ("os_settings", "theme"))
    assert report == {
        "key": "os_settings.theme",
        "value": "dark",
        "deleted": False,
        "default": False,
        "origins": [
            {
                "key": "os_settings.theme",
                "part_of": None,
                "deleted": False,
                "set_by": "dev.yaml:3:22",
                "overrode": [
                    {"at": "base.yaml:2:22", "value": "light", "deleted": False, "absent": False}
                ],
            }
        ],
    }


@pytest.mark.parametrize("key", ["os_settings.nothing", "labels.x", "os_settings.terminal_shell"])
def test_explain_unset_keys(key: str) -> None:
    r = resolved()
    assert explain_report(r, key_path(key, r.data)) is None
