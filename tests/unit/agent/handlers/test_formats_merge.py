"""The key-by-key merge of shared configuration files: facts in, text out, no I/O.

What a user relies on: mien sets its keys and leaves every other byte of meaning alone,
and taking a key back out restores exactly what was there (or nothing, with the tables
mien had to create for it).
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from typing import Any

import pytest
import yaml

from mien.agent.handlers import formats
from mien.agent.handlers.formats import KeyState
from mien.agent.handlers.jsonc import JsoncDoc
from mien.agent.handlers.linedocs import MISSING, EnvDoc, IniDoc, env_quote, env_unquote
from mien.agent.handlers.treedocs import TomlDoc
from mien.agent.handlers.yamldoc import YamlDoc


def roundtrip(
    fmt: str, text: str | None, values: dict[str, Any], previous: dict[Any, KeyState] | None = None
) -> tuple[str, dict[Any, KeyState]]:
    doc = formats.load(fmt, text)
    states = formats.merge(fmt, doc, formats.flatten(fmt, values), previous or {})
    return doc.render(None), states


def plain(doc: formats.Doc) -> dict[str, Any]:
    assert isinstance(doc, JsoncDoc | YamlDoc | TomlDoc)
    return doc.plain()


def release(fmt: str, text: str, states: dict[Any, KeyState]) -> formats.Doc:
    doc = formats.load(fmt, text)
    formats.unmerge(doc, states)
    return doc


# --- json / yaml / toml ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "yaml", "toml"])
def test_merge_keeps_unmanaged_keys_and_unmerge_restores_pristine(fmt: str) -> None:
    original = {"user": {"name": "alice"}, "port": 80}
    text = {
        "json": json.dumps,
        "yaml": yaml.safe_dump,
        "toml": lambda d: 'port = 80\n[user]\nname = "alice"\n',
    }[fmt](original)
    merged, states = roundtrip(fmt, text, {"port": 8080, "server": {"tls": True}})
    data = plain(formats.load(fmt, merged))
    assert data["user"] == {"name": "alice"}
    assert data["port"] == 8080
    assert data["server"] == {"tls": True}
    assert states[("port",)].pristine == 80
    assert states[("server", "tls")].pristine is MISSING
    assert (
        plain(release(fmt, merged, states)) == original
    )  # port back to 80, the "server" table mien made is gone


def test_created_file_is_empty_after_release() -> None:
    merged, states = roundtrip("json", None, {"a": {"b": {"c": 1}}, "d": [1, 2]})
    assert json.loads(merged) == {"a": {"b": {"c": 1}}, "d": [1, 2]}
    assert release("json", merged, states).is_empty()


def test_parent_table_kept_when_it_existed_before() -> None:
    merged, states = roundtrip("json", '{"a": {}}', {"a": {"b": 1}})
    assert states[("a", "b")].kept == 1
    assert plain(release("json", merged, states)) == {"a": {}}


def test_table_made_for_one_key_is_not_claimed_by_a_later_key() -> None:
    # Persona 1 sets a.b (mien creates "a"); persona 2 sets a.b and a.c: on release of
    # both, "a" must disappear too although "a" existed when a.c was first set.
    text, first = roundtrip("json", "{}", {"a": {"b": 1}})
    text, second = roundtrip("json", text, {"a": {"b": 1, "c": 2}}, first)
    assert second[("a", "c")].kept == 0
    assert plain(release("json", text, second)) == {}


def test_scalar_in_the_way_is_displaced_and_put_back() -> None:
    text, states = roundtrip("json", '{"a": 5, "z": 1}', {"a": {"b": 1}})
    assert json.loads(text) == {"a": {"b": 1}, "z": 1}
    assert plain(release("json", text, states)) == {"a": 5, "z": 1}


def test_switch_releases_keys_the_new_persona_does_not_set() -> None:
    text, one = roundtrip("json", '{"keep": true}', {"theme": "dark", "font": {"size": 12}})
    text, two = roundtrip("json", text, {"theme": "light"}, one)
    assert json.loads(text) == {"keep": True, "theme": "light"}
    assert two[("theme",)].pristine is MISSING  # still the value from before persona one


def test_json_indentation_is_kept() -> None:
    text, _ = roundtrip("json", '{\n    "a": 1\n}\n', {"b": 2})
    assert text == '{\n    "a": 1,\n    "b": 2\n}\n'


def test_toml_dates_survive_the_meta_round_trip() -> None:
    text = "when = 2024-05-01T10:00:00Z\nday = 2024-05-01\n"
    merged, states = roundtrip("toml", text, {"when": "later", "day": "soon"})
    meta = json.loads(json.dumps(formats.keys_to_meta(states)))
    restored = formats.keys_from_meta(meta)
    back = plain(release("toml", merged, restored))
    assert back == tomllib.loads(text)
    assert isinstance(back["when"], dt.datetime)


@pytest.mark.parametrize(
    ("fmt", "text", "line"),
    [
        ("json", '{"a": 1,,}', "line 1"),
        ("yaml", "a: [1\nb: 2\n", "line"),
        ("toml", "a = \n", "TOML"),
        ("yaml", "- a\n- b\n", "not a mapping"),
    ],
)
def test_bad_files_are_refused_with_a_position(fmt: str, text: str, line: str) -> None:
    with pytest.raises(formats.FormatError, match=line):
        formats.load(fmt, text)


def test_toml_cannot_hold_null() -> None:
    doc = formats.load("toml", "")
    with pytest.raises(formats.FormatError, match="TOML"):
        formats.merge("toml", doc, {("a",): None}, {})


def test_changed_keys_finds_user_edits_and_removals() -> None:
    text, states = roundtrip("json", None, {"theme": "dark", "font": {"size": 12}, "x": 1})
    data = json.loads(text)
    data["font"]["size"] = 16
    del data["x"]
    data["mine"] = True
    doc = formats.load("json", json.dumps(data))
    assert dict(formats.changed_keys("json", doc, states)) == {("font", "size"): 16, ("x",): None}


# --- ini ---------------------------------------------------------------------------------

GTK = """\
# my GTK settings
[Settings]
gtk-font-name = Cantarell 11
; a comment
gtk-icon-theme-name=Adwaita

[Other]
x: 1
"""


def test_ini_edits_only_managed_lines() -> None:
    text, states = roundtrip(
        "ini",
        GTK,
        {"Settings": {"gtk-application-prefer-dark-theme": "1", "gtk-icon-theme-name": "Papirus"}},
    )
    assert text == GTK.replace(
        "gtk-icon-theme-name=Adwaita\n",
        "gtk-icon-theme-name=Papirus\ngtk-application-prefer-dark-theme=1\n",
    )
    back = release("ini", text, states)
    assert back.render(None) == GTK


def test_ini_section_created_and_removed() -> None:
    text, states = roundtrip("ini", GTK, {"New": {"k": True, "n": 3}})
    assert text.endswith("x: 1\n\n[New]\nk: true\nn: 3\n")  # written like the key before
    assert release("ini", text, states).render(None) == GTK


def test_ini_new_file_uses_the_given_delimiter_and_header() -> None:
    doc = IniDoc("", delimiter="=")
    formats.merge("ini", doc, {("Settings", "gtk-theme-name"): "Adwaita-dark"}, {})
    assert doc.render("# head\n") == "# head\n[Settings]\ngtk-theme-name=Adwaita-dark\n"
    assert (
        IniDoc(doc.render("# Managed by mien (persona x).\n"), "=")
        .render(None)
        .startswith("[Settings]")
    )


def test_ini_values_typed_back_like_what_mien_wrote() -> None:
    text, states = roundtrip("ini", None, {"s": {"on": True, "n": 3, "f": 1.5, "t": "x"}})
    edited = (
        text.replace("on = true", "on = no").replace("n = 3", "n = 4").replace("f = 1.5", "f = 2.5")
    )
    doc = formats.load("ini", edited)
    assert dict(formats.changed_keys("ini", doc, states)) == {
        ("s", "on"): False,
        ("s", "n"): 4,
        ("s", "f"): 2.5,
    }


def test_ini_multiline_values_and_duplicates() -> None:
    doc = IniDoc("[a]\nk = one\n  two\nk = last\n")
    assert doc.get(("a", "k")) == "last"
    doc = IniDoc("[a]\nk = one\n  two\n")
    assert doc.get(("a", "k")) == "one\ntwo"
    doc.set(("a", "k"), "x")
    assert doc.render(None) == "[a]\nk = x\n"


def test_ini_rejects_nested_values() -> None:
    with pytest.raises(formats.FormatError):
        formats.merge("ini", IniDoc(), {("a", "b"): {"c": 1}}, {})


# --- env ---------------------------------------------------------------------------------

ENV = "# app settings\nexport HOST=localhost\nPORT=80 # the port\n\nNAME='my app'\n"


def test_env_edits_only_managed_lines() -> None:
    text, states = roundtrip("env", ENV, {"PORT": 8080, "TOKEN": "a b$c"})
    assert text == ENV.replace("PORT=80 # the port", "PORT=8080") + 'TOKEN="a b\\$c"\n'
    assert EnvDoc(text).get(("TOKEN",)) == "a b$c"
    assert EnvDoc(text).get(("NAME",)) == "my app"
    assert EnvDoc(text).get(("HOST",)) == "localhost"
    back = release("env", text, states)
    assert back.render(None) == ENV.replace("PORT=80 # the port", "PORT=80")


@pytest.mark.parametrize(
    "value", ["plain", "", "with space", 'q"uote', "back\\slash", "$HOME", "a\nb", "it's"]
)
def test_env_quote_round_trip(value: str) -> None:
    assert env_unquote(env_quote(value)) == value


def test_meta_round_trip_of_key_states() -> None:
    states = {
        ("a", "b.c"): KeyState("w", MISSING, 1, (1, 5)),
        ("x",): KeyState([1, 2], {"p": 1}, 0, None),
    }
    meta = json.loads(json.dumps(formats.keys_to_meta(states)))
    assert set(meta) == {'a."b.c"', "x"}
    assert formats.keys_from_meta(meta) == states


GITCONFIG = (
    '[user]\n\tname = Alice\n\temail = alice@example.com\n[remote "origin"]\n\turl = git@x:y.git\n'
)


def test_ini_with_indented_keys_like_git_config() -> None:
    text, states = roundtrip(
        "ini", GITCONFIG, {"user": {"name": "Alice A."}, "init": {"defaultBranch": "main"}}
    )
    assert (
        text
        == GITCONFIG.replace("name = Alice", "name = Alice A.")
        + "\n[init]\n\tdefaultBranch = main\n"
    )
    doc = formats.load("ini", text)
    assert doc.get(('remote "origin"', "url")) == "git@x:y.git"
    assert release("ini", text, states).render(None) == GITCONFIG
