"""Reading documents safely: hostile and malformed input is refused with a positioned message.

Everything is parsed from bytes in memory (including the 50 MB document), so the limits are
those of the reader itself, not of a file system.
"""

from __future__ import annotations

import json

import pytest

from mien.spec.document import parse_document
from mien.spec.errors import SpecError
from mien.spec.source import MAX_BYTES, MAX_DEPTH, MAX_NODES, parse_text
from tests.unit.spec.spec_helpers import doc, problem, problems

BOMB = (
    b'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    b"b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    b"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    b"f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
)

HOSTILE: list[tuple[str, bytes, str]] = [
    (
        "p.yaml",
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
        "p.yaml:1:1: (document): not a text document (binary data at byte 8)",
    ),
    (
        "p.yaml",
        b"",
        "p.yaml:1:1: (document): empty document: expected a persona (a YAML or JSON mapping)",
    ),
    (
        "p.yaml",
        b"   \n\n\t\n",
        "p.yaml:1:1: (document): empty document: expected a persona (a YAML or JSON mapping)",
    ),
    (
        "p.yaml",
        b"# only a comment\n\n# another\n",
        "p.yaml:1:1: (document): empty document: expected a persona (a YAML or JSON mapping)",
    ),
    (
        "p.yaml",
        b"name: caf\xe9\n",
        "p.yaml:1:1: (document): not UTF-8 text (invalid byte at offset 9)",
    ),
    (
        "p.yaml",
        b"name: ok\nlabels: {a: \xff}\n",
        "p.yaml:2:1: (document): not UTF-8 text (invalid byte at offset 21)",
    ),
    (
        "p.yaml",
        BOMB,
        "p.yaml:6:8: (document): document expands to more than 100,000 values (an alias bomb, or far too large for a persona)",
    ),
    (
        "p.yaml",
        b"a: " + b"[" * 100_000 + b"]" * 100_000,
        f"p.yaml:1:{3 + MAX_DEPTH}: (document): nested more than {MAX_DEPTH} levels deep",
    ),
    (
        "p.json",
        b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        f"p.json:1:1: (document): nested more than {MAX_DEPTH} levels deep",
    ),
    (
        "p.json",
        b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}",
        f"p.json:1:1: (document): nested more than {MAX_DEPTH} levels deep",
    ),
    ("p.yaml", b"name: a\nname: b\n", "p.yaml:2:1: name: duplicate key 'name'"),
    (
        "p.yaml",
        b"name: a\n---\nname: b\n",
        "p.yaml:2:1: (document): more than one YAML document: put each persona in its own file",
    ),
    (
        "p.yaml",
        b"name: [a\n",
        "p.yaml:2:1: (document): invalid YAML: did not find expected ',' or ']'",
    ),
    (
        "p.yaml",
        b"name: a\n  bad: indent\n",
        "p.yaml:2:6: (document): invalid YAML: mapping values are not allowed in this context",
    ),
    (
        "p.yaml",
        b"name: a\nx:\t\x01x\n",
        "p.yaml:2:4: (document): invalid YAML: control characters are not allowed (character 0x1)",
    ),
    ("p.yaml", b"? [a]\n: b\n", "p.yaml:1:3: (document): a key must be a plain value"),
    ("p.yaml", b"name: a\nlabels: *nope\n", "p.yaml:2:9: (document): unknown alias *nope"),
    ("p.json", b'{"name": }', "p.json:1:10: (document): invalid JSON: Expecting value"),
    (
        "p.json",
        b'{"name": "a",\n "labels": {"x": 1,}}',
        "p.json:2:20: (document): invalid JSON: Expecting property name enclosed in double quotes",
    ),
    (
        "p.json",
        b"[1, 2]",
        "p.json:1:1: (document): a persona is a mapping of fields, but this document is a list",
    ),
]


@pytest.mark.parametrize(
    ("source", "raw", "message"), HOSTILE, ids=[f"{i}" for i in range(len(HOSTILE))]
)
def test_hostile_and_malformed_input(source: str, raw: bytes, message: str) -> None:
    assert problem(raw, source) == message


def test_fifty_megabytes_is_refused_before_parsing() -> None:
    raw = b"name: big\ndescription: " + b"x" * (50 * 1024 * 1024) + b"\n"
    assert problem(raw) == (
        f"p.yaml:1:1: (document): document is {len(raw):,} bytes; the limit is {MAX_BYTES:,} "
        "(a persona is a few KiB: split large files or data out of it)"
    )


def test_just_under_the_size_limit_is_read() -> None:
    raw = b"name: big\ndescription: " + b"x" * (MAX_BYTES - 100) + b"\n"
    assert len(doc(raw.decode()).data["description"]) == MAX_BYTES - 100


def test_deepest_allowed_nesting_is_read() -> None:
    value: object = "leaf"
    for _ in range(MAX_DEPTH - 4):
        value = {"k": value}
    text = json.dumps({"application_configuration": {"app": {"values": value}}})
    assert doc(text, "p.json").persona.application_configuration["app"].values is not None


def test_many_values_below_the_node_limit_are_read() -> None:
    labels = ", ".join(f"k{i}: v" for i in range(MAX_NODES // 4))
    assert len(doc(f"labels: {{{labels}}}\n").data["labels"]) == MAX_NODES // 4


def test_every_duplicate_key_is_reported() -> None:
    assert problems(b"name: a\nos_settings:\n  theme: dark\n  theme: light\nname: b\n") == [
        "p.yaml:4:3: os_settings.theme: duplicate key 'theme'",
        "p.yaml:5:1: name: duplicate key 'name'",
    ]


def test_a_lone_document_start_is_one_document() -> None:
    assert doc("---\nname: a\n").name == "a"


def test_utf8_bom_is_accepted() -> None:
    assert parse_document(b"\xef\xbb\xbfname: bom\n", "p.yaml").name == "bom"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("on", "on"),
        ("no", "no"),
        ("yes", "yes"),
        ("off", "off"),
        ("y", "y"),
        ("true", True),
        ("False", False),
        ("~", None),
        ("null", None),
        ("0o17", 15),
        ("0x1f", 31),
        ("012", 12),
        ("1_000", "1_000"),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("2024-01-01", "2024-01-01"),
        ("'true'", "true"),
        ('"12"', "12"),
        ("!!str 12", "12"),
        ("!!int '12'", 12),
    ],
)
def test_yaml_1_2_core_scalars(text: str, value: object) -> None:
    """YAML 1.2: `no`, `on`, `yes` stay strings (the "Norway problem" of YAML 1.1)."""
    assert parse_text(f"v: {text}\n", "p.yaml").data == {"v": value}


def test_keys_that_are_not_strings_become_strings() -> None:
    assert parse_text("1: a\ntrue: b\nnull: c\n", "p.yaml").data == {
        "1": "a",
        "true": "b",
        "null": "c",
    }


MERGES: list[tuple[str, dict[str, object]]] = [
    # explicit keys win over merged ones, before or after the merge key
    (
        "d: &d {theme: dark, editor: vim}\nos:\n  <<: *d\n  editor: nano\n",
        {"editor": "nano", "theme": "dark"},
    ),
    (
        "d: &d {theme: dark, editor: vim}\nos:\n  editor: nano\n  <<: *d\n",
        {"editor": "nano", "theme": "dark"},
    ),
    # in a list of sources, the first that has a key wins
    (
        "a: &a {theme: dark}\nb: &b {theme: light, x: 1}\nos:\n  <<: [*a, *b]\n",
        {"theme": "dark", "x": 1},
    ),
    # an inline mapping merges too
    ("os:\n  <<: {theme: dark, a: 1}\n  a: 2\n", {"theme": "dark", "a": 2}),
]


@pytest.mark.parametrize(("text", "merged"), MERGES)
def test_merge_keys(text: str, merged: dict[str, object]) -> None:
    assert parse_text(text, "p.yaml").data["os"] == merged


def test_merge_key_errors() -> None:
    assert problems("os:\n  <<: [1]\n  theme: a\n  theme: b\n") == [
        "p.yaml:2:7: os.<<: << merges only mappings",
        "p.yaml:4:3: os.theme: duplicate key 'theme'",
    ]


def test_positions_of_keys_and_values() -> None:
    loaded = parse_text("name: a\nos_settings:\n  theme: dark\n", "p.yaml")
    assert (
        loaded.where.find(("os_settings", "theme")) == loaded.where.values[("os_settings", "theme")]
    )
    assert (
        loaded.where.find(("os_settings", "theme")).line,
        loaded.where.find(("os_settings", "theme")).column,
    ) == (3, 10)
    assert (loaded.where.find(("os_settings", "theme"), key=True).column) == 3
    # A path below a known one falls back to the nearest ancestor.
    assert loaded.where.find(("os_settings", "theme", "x")).line == 3


def test_json_positions() -> None:
    text = '{\n  "name": "a",\n  "resource_requirements": {"cpu": 0}\n}'
    assert problem(text, "p.json") == (
        "p.json:3:36: resource_requirements.cpu: 0: CPU cores must be more than 0 and at most 4096"
    )


def test_json_duplicate_keys_follow_json() -> None:
    """A .json file is read with JSON's own rules: the last duplicate wins."""
    assert doc('{"name": "a", "name": "b"}', "p.json").name == "b"


def test_json_looking_yaml_falls_back_to_yaml() -> None:
    assert doc("{name: flow-style}\n", "p.yaml").name == "flow-style"


def test_spec_error_sorts_errors_first_in_document_order() -> None:
    with pytest.raises(SpecError) as info:
        parse_document("restricted_commands: [a b]\nnmae: x\n", "p.yaml")
    assert [p.line for p in info.value.problems] == [1, 2]
    assert info.value.errors == info.value.problems


# --- values nothing can hold: lone surrogates, integers past 64 bits -------------------------

SURROGATE_HINT = "write the character itself"
BIG = "9" * 5000


@pytest.mark.parametrize(
    ("source", "raw", "start"),
    [
        ("p.yaml", 'name: a\ndescription: "x \\ud800"\n', "p.yaml:2:14: description: "),
        ("p.yaml", 'name: a\nlabels:\n  "\\udfff": v\n', "p.yaml:3:3: labels"),
        ("p.yaml", 'name: a\ndescription: "\\U0000d800"\n', "p.yaml:2:14: description: "),
        ("p.json", '{"name": "a",\n "description": "\\ud800"}', "p.json:2:17: description: \\ud800 "),
        ("p.json", '{"name": "a", "labels": {"\\udc00": "v"}}', "p.json:1:25: labels.\\udc00: "),
        ("p.json", '{"name": "a", "tags": ["ok", "\\ud83d"]}', "p.json:1:"),
    ],
)  # fmt: skip
def test_a_lone_surrogate_is_a_positioned_problem(source: str, raw: str, start: str) -> None:
    """A ``\\ud800`` escape is half a character: no file, database or HTTP answer can hold
    it, so the reader refuses it where it is written."""
    found = problem(raw, source)
    assert found.startswith(start) and SURROGATE_HINT in found, found


def test_surrogate_pairs_and_escaped_backslashes_are_text() -> None:
    assert (
        doc('{"name": "a", "description": "\\ud83d\\ude00"}', "p.json").data["description"]
        == "\U0001f600"
    )
    assert (
        doc('{"name": "a", "description": "C:\\\\ud800"}', "p.json").data["description"]
        == "C:\\ud800"
    )
    assert doc("name: a\ndescription: C:\\ud800\n").data["description"] == "C:\\ud800"


@pytest.mark.parametrize(
    ("source", "raw", "line"),
    [
        ("p.yaml", f"name: a\nsettings:\n  swappiness: {BIG}\n",
         "p.yaml:3:15: settings.swappiness: an integer of 5,000 digits is out of range (at most 64 bits)"),
        ("p.yaml", f"name: a\nlabels:\n  {'9' * 40}: v\n",
         f"p.yaml:3:3: labels.{'9' * 40}: an integer of 40 digits is out of range (at most 64 bits)"),
        ("p.yaml", "name: a\nsettings:\n  swappiness: 0x" + "f" * 5000 + "\n",
         "p.yaml:3:15: settings.swappiness: integer out of range (at most 64 bits: "
         "-9223372036854775808 to 9223372036854775807)"),
        ("p.yaml", "name: a\nsettings:\n  swappiness: !!int " + BIG + "\n",
         "p.yaml:3:15: settings.swappiness: an integer of 5,000 digits is out of range (at most 64 bits)"),
        ("p.json", '{"name": "a",\n "settings": {"swappiness": ' + BIG + "}}",
         "p.json:2:29: settings.swappiness: an integer of 5,000 digits is out of range (at most 64 bits)"),
        ("p.json", '{"name": "a", "settings": {"swappiness": -9223372036854775809}}',
         "p.json:1:42: settings.swappiness: integer out of range (at most 64 bits: "
         "-9223372036854775808 to 9223372036854775807)"),
    ],
)  # fmt: skip
def test_an_integer_past_64_bits_is_a_positioned_problem(source: str, raw: str, line: str) -> None:
    assert problem(raw, source) == line


def test_integers_at_the_64_bit_limits_are_read() -> None:
    text = '{"name": "a", "labels": {"x": "y"}, "application_configuration": {"app": {"values": '
    text += '{"lo": -9223372036854775808, "hi": 9223372036854775807, "zeros": 000000000000000000000001}}}}'
    values = parse_text(text, "p.yaml", json_format=False).data["application_configuration"]
    assert values["app"]["values"] == {"lo": -(2**63), "hi": 2**63 - 1, "zeros": 1}
