"""The in-place editors of JSON(C), YAML and TOML files: what a user wrote around the keys
mien manages — comments, order, quoting, spacing — stays byte for byte, and taking mien's
keys back out gives the file back exactly as it was."""

from __future__ import annotations

from typing import Any

import pytest

from mien.agent.handlers import formats
from mien.agent.handlers.formats import KeyState
from mien.agent.handlers.jsonc import JsoncDoc, loads

YAML = """\
# my editor settings
editor:
  font: mono   # I like mono
  size: 12

# keep this
plugins:
    - 'git'
    - "lsp"   # the language server
long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb ccc
hex: 0x1F
day: 2024-05-01
theme: light  # the theme
# the end
"""

TOML = """\
# my app
title = "notes"   # shown in the title bar

[editor]
font = 'mono' # I like mono
# between
size = 12

[[servers]]
name = "a"
ip = "10.0.0.1"

[servers.extra]
x = 1
"""

JSONC = """\
{
    // the editor
    "editor.fontFamily": "mono", // I like mono
    "editor.fontSize": 12,
    /* files I never want to see */
    "files.exclude": {
        "**/.git": true,
        "**/node_modules": true,
    },
    "workbench.colorTheme": "Default Light+",
}
"""

# A comment after a changed YAML value keeps its column (ruamel aligns it).
FIXTURES = {"yaml": YAML, "toml": TOML, "json": JSONC}
# (fmt, values, the fixture's text for the managed keys -> what mien writes)
CHANGES = {
    "yaml": (
        {"theme": "dark", "editor": {"size": 14}},
        [("size: 12", "size: 14"), ("theme: light  #", "theme: dark   #")],
    ),
    "toml": (
        {"editor": {"size": 14}, "title": "mine"},
        [("size = 12", "size = 14"), ('"notes"', '"mine"')],
    ),
    "json": (
        {"editor.fontSize": 14, "workbench.colorTheme": "Solarized"},
        [('Size": 12', 'Size": 14'), ('"Default Light+"', '"Solarized"')],
    ),
}
NEW = {
    "yaml": {"editor": {"ligatures": True}, "added": {"a": [1, 2]}},
    "toml": {"editor": {"ligatures": True}, "added": {"a": [1, 2]}, "top": 1},
    "json": {"files.exclude": {"*.pyc": True}, "added": {"a": [1, 2]}, "top": "x"},
}


def merge(
    fmt: str, text: str | None, values: dict[str, Any], previous: Any = None
) -> tuple[str, Any]:
    doc = formats.load(fmt, text)
    states = formats.merge(fmt, doc, formats.flatten(fmt, values), previous or {})
    return doc.render(None), states


def release(fmt: str, text: str, states: dict[Any, KeyState]) -> str:
    doc = formats.load(fmt, text)
    formats.unmerge(doc, states)
    return doc.render(None)


@pytest.mark.parametrize("fmt", sorted(FIXTURES))
def test_changing_managed_keys_changes_only_their_text(fmt: str) -> None:
    values, edits = CHANGES[fmt]
    text, states = merge(fmt, FIXTURES[fmt], values)
    expected = FIXTURES[fmt]
    for old, new in edits:
        assert expected.count(old) == 1
        expected = expected.replace(old, new)
    assert text == expected
    assert release(fmt, text, states) == FIXTURES[fmt]


@pytest.mark.parametrize("fmt", sorted(FIXTURES))
def test_added_keys_leave_every_other_byte_and_release_gives_the_file_back(fmt: str) -> None:
    text, states = merge(fmt, FIXTURES[fmt], NEW[fmt])
    doc = formats.load(fmt, text)
    for path, value in formats.flatten(fmt, NEW[fmt]).items():
        assert doc.get(path) == value
    # Every line of the user's file is still there, in order.
    lines = iter(text.splitlines())
    for line in FIXTURES[fmt].splitlines():
        assert any(line == other for other in lines), line
    assert release(fmt, text, states) == FIXTURES[fmt]


@pytest.mark.parametrize("fmt", sorted(FIXTURES))
def test_a_value_already_set_changes_no_byte(fmt: str) -> None:
    values = {"yaml": {"editor": {"size": 12}}, "toml": {"editor": {"size": 12}}}.get(
        fmt, {"editor.fontSize": 12}
    )
    text, _ = merge(fmt, FIXTURES[fmt], values)
    assert text == FIXTURES[fmt]


@pytest.mark.parametrize("fmt", ["yaml", "toml"])
def test_the_header_is_written_once(fmt: str) -> None:
    head = "# Managed by mien (persona p). It sets some keys.\n"
    doc = formats.load(fmt, FIXTURES[fmt])
    formats.merge(fmt, doc, formats.flatten(fmt, CHANGES[fmt][0]), {})
    once = doc.render(head)
    again = formats.load(fmt, once)
    assert again.render(head) == once
    assert again.render(None) == once.removeprefix(head)


def test_yaml_comment_closing_a_mapping_stays_with_the_next_key() -> None:
    text, states = merge("yaml", YAML, {"editor": {"ligatures": True}})
    assert "  size: 12\n  ligatures: true\n\n# keep this\nplugins:" in text
    assert release("yaml", text, states) == YAML


def test_yaml_with_only_comments_keeps_them() -> None:
    text, _ = merge("yaml", "# nothing yet\n", {"a": 1})
    assert text == "# nothing yet\na: 1\n"


def test_yaml_comments_stay_when_the_last_key_goes() -> None:
    text, states = merge("yaml", "# mine\n", {"a": 1})
    assert text == "# mine\na: 1\n"
    assert release("yaml", text + "# after\n", states) == "# mine\n# after\n"


def test_yaml_alias_bomb_at_a_managed_key_is_refused() -> None:
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n'
    for name, prev in zip("bcdef", "abcde", strict=True):
        bomb += f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]\n"
    with pytest.raises(formats.FormatError, match="more than"):
        merge("yaml", bomb, {"f": "safe"})


# --- JSONC -------------------------------------------------------------------------------


def test_vs_code_settings_are_read_with_comments_and_trailing_commas() -> None:
    assert loads(JSONC) == {
        "editor.fontFamily": "mono",
        "editor.fontSize": 12,
        "files.exclude": {"**/.git": True, "**/node_modules": True},
        "workbench.colorTheme": "Default Light+",
    }
    assert loads('{"a": "// not a comment", "b": "/* nor this */"}') == {
        "a": "// not a comment",
        "b": "/* nor this */",
    }


@pytest.mark.parametrize(
    "text",
    ['{\n  "a": 1\n}\n', '{"a": 1}', '{\n\t"a": 1,\n}', '{\n  "a": 1 // one\n}\n', "{}", "{ }\n"],
)
def test_jsonc_add_and_remove_round_trips(text: str) -> None:
    doc = JsoncDoc(text)
    doc.set(("b",), {"c": [1, 2]})
    assert loads(doc.text)["b"] == {"c": [1, 2]}
    doc.delete(("b",), 0)
    assert doc.text == text.replace("{ }", "{}")


def test_jsonc_new_members_are_written_like_their_neighbours() -> None:
    doc = JsoncDoc('{\n\t"a": 1,\n}\n')
    doc.set(("b",), 2)
    assert doc.text == '{\n\t"a": 1,\n\t"b": 2,\n}\n'
    doc = JsoncDoc('{"a": 1}')
    doc.set(("b", "c"), 2)
    assert doc.text == '{"a": 1, "b": {"c": 2}}'
    doc = JsoncDoc('{\n  "a": 1 // one\n}\n')
    doc.set(("b",), 2)
    assert doc.text == '{\n  "a": 1, // one\n  "b": 2\n}\n'


def test_jsonc_user_edit_is_found() -> None:
    text, states = merge("json", JSONC, {"editor.fontSize": 14})
    edited = text.replace('Size": 14', 'Size": 16') + "// a comment at the end\n"
    doc = formats.load("json", edited)
    assert dict(formats.changed_keys("json", doc, states)) == {("editor.fontSize",): 16}


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"a": 1,,}', "line 1 column 9"),
        ('{\n  "a": 1\n  /* open', "line 3 column 3: a /* comment is never closed"),
        ('{"a": 1} x', "extra data"),
        ('{"a" 1}', "expected ':'"),
        ("[1, 2]", "not a mapping"),
        ('{"a": ' + "[" * 300 + "]" * 300 + "}", "nested more than"),
        ('{"a": "\\q"}', "line 1"),
    ],
)
def test_jsonc_errors_say_where(text: str, where: str) -> None:
    with pytest.raises(formats.FormatError, match=r"invalid JSON|not a mapping") as info:
        formats.load("json", text)
    assert where in str(info.value)
