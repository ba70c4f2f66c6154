"""No value or key of a persona can add lines, sections or keys to a file mien generates:
every format either quotes what it writes or refuses it with a message naming the field.

A line break inside a theme name or an INI key used to be written as is, so the next
reader (dconf, GTK, mien itself) saw a section the persona never declared.
"""

from __future__ import annotations

from typing import Any

import pytest

from mien.agent.handlers import formats, theme
from mien.agent.handlers.base import HandlerError

BREAKS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\x00", "\x1b"]
EVIL = "[org/gnome/desktop/screensaver]{}lock-enabled=false"


@pytest.mark.parametrize("brk", BREAKS, ids=repr)
def test_theme_with_a_line_break_is_refused_for_dconf(brk: str) -> None:
    value = "Adwaita" + brk + EVIL.format(brk)
    with pytest.raises(HandlerError, match=r"os_settings\.theme.*control character"):
        theme.dconf_keyfile("p", value)
    with pytest.raises(HandlerError, match=r"os_settings\.theme"):
        theme.gtk_keys(value)


def test_ordinary_theme_names_are_written() -> None:
    text = theme.dconf_keyfile("p", "Nordic-bluish 'accent'")
    assert text.endswith("gtk-theme='Nordic-bluish \\'accent\\''\n")


def _merge(fmt: str, text: str | None, values: dict[str, Any]) -> str:
    doc = formats.load(fmt, text)
    formats.merge(fmt, doc, formats.flatten(fmt, values), {})
    return doc.render(None)


@pytest.mark.parametrize("brk", BREAKS, ids=repr)
@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"Settings": {"gtk-theme-name" + "{}[evil]{}x": "1"}}, "Settings.gtk-theme-name"),
        ({"Settings{}[evil]": {"k": "1"}}, "Settings"),
        ({"Settings": {"k": "v{}[evil]{}x=1"}}, "Settings.k"),
    ],
)
def test_ini_keys_sections_and_values_cannot_inject(
    brk: str, values: dict[str, Any], field: str
) -> None:
    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            return {k.format(brk, brk): fill(v) for k, v in node.items()}
        return node.format(brk, brk)

    with pytest.raises(formats.FormatError, match="control character") as info:
        _merge("ini", "[Settings]\na = 1\n", fill(values))
    assert field in str(info.value)


@pytest.mark.parametrize("key", ["k=v", "[evil]", "#k", ";k", " k", "k:v"])
def test_ini_keys_that_would_read_back_as_something_else_are_refused(key: str) -> None:
    with pytest.raises(formats.FormatError, match="key"):
        _merge("ini", None, {"s": {key: "1"}})


@pytest.mark.parametrize("section", ["a]b", "", " s"])
def test_ini_sections_that_would_read_back_as_something_else_are_refused(section: str) -> None:
    with pytest.raises(formats.FormatError, match="section"):
        _merge("ini", None, {section: {"k": "1"}})


@pytest.mark.parametrize("key", ["A\nB", "A B", "1A", "A=B", ""])
def test_env_keys_must_be_names(key: str) -> None:
    with pytest.raises(formats.FormatError, match="name"):
        _merge("env", "X=1\n", {key: "1"})


@pytest.mark.parametrize("brk", [b for b in BREAKS if b != "\n"], ids=repr)
def test_env_values_with_control_characters_are_refused(brk: str) -> None:
    with pytest.raises(formats.FormatError, match="control character"):
        _merge("env", "X=1\n", {"A": f"1{brk}B=2"})


def test_env_value_with_a_newline_is_quoted() -> None:
    text = _merge("env", "X=1\n", {"A": "1\nB=2"})
    assert text == 'X=1\nA="1\\nB=2"\n'
    assert formats.load("env", text).get(("B",)) is formats.MISSING


@pytest.mark.parametrize("fmt", ["json", "yaml", "toml"])
@pytest.mark.parametrize("brk", BREAKS, ids=repr)
def test_tree_formats_quote_keys_and_values(fmt: str, brk: str) -> None:
    key = f"a{brk}[evil]{brk}b"
    value = f"v{brk}evil = 1{brk}"
    if fmt == "yaml" and brk in "\x85\u2028":  # YAML line breaks ruamel cannot quote
        with pytest.raises(formats.FormatError, match="control character"):
            _merge(fmt, None, {key: value})
        return
    text = _merge(fmt, None, {key: value, "t": {key: value}})
    doc = formats.load(fmt, text)
    assert doc.get((key,)) == value
    assert doc.get(("t", key)) == value
    assert doc.get(("evil",)) is formats.MISSING
