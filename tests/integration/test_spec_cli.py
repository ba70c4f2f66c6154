"""``mien validate``, ``render``, ``explain`` and ``schema`` as real processes.

Runs the installed ``mien`` command on the example personas and on bad files written under a
temporary directory, and checks output and exit status exactly: 0 valid, 1 invalid, 2 usage.
Also checks that the example set is valid, round-trips through ``render`` and uses every
field of the language.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args

import jsonschema_rs
import pytest

from mien.spec.models import (
    AccessControls,
    Action,
    AppConfig,
    ApplicationSettings,
    BehavioralSettings,
    ConfigFormat,
    DataSource,
    FileAccess,
    LearningDomain,
    Manager,
    NetworkAccess,
    OsSettings,
    Package,
    Persona,
    ResourceRequirements,
    Rule,
    Script,
)
from tests.support import EXAMPLES, REPO, Run, run_mien

PERSONAS = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
OVERLAYS = sorted((EXAMPLES / "overlays").iterdir())
SEEDS = [
    "persona_developer.yml",
    "test-runner.json",
    "self-optimizing.yaml",
    "marketing-report.json",
    "HighTraffic.yaml",
]
REALISTIC = [
    "base.yaml",
    "workstation.yaml",
    "data-analyst.yaml",
    "security-auditor.yaml",
    "web-server-under-load.yaml",
    "kiosk.yaml",
]
HIGHTRAFFIC_WARNING = (
    "examples/personas/HighTraffic.yaml:14:18: adaptation_rules[0].when: warning: reads "
    "'cpu_percent', a metric of the learning domain 'metrics', which learning_domains does not "
    "grant: it is never collected, and the rule stays unknown until learning_domains lists "
    "'metrics'\n"
    "examples/personas/HighTraffic.yaml:16:18: adaptation_rules[1].when: warning: reads "
    "'latency_ms:default', a metric of the learning domain 'metrics', which learning_domains "
    "does not grant: it is never collected, and the rule stays unknown until learning_domains "
    "lists 'metrics'\n"
    "examples/personas/HighTraffic.yaml:17:15: adaptation_rules[1].then[0].respond: warning: "
    "response 'activate-cdn-caching' is not defined under automated_responses: it will be "
    "reported as 'no handler'\n"
)


def mien(*args: str | Path, cwd: Path = REPO) -> Run:
    result = run_mien(*args, cwd=cwd)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


# --- the example set -----------------------------------------------------------------------


def test_every_seed_example_is_there_and_the_realistic_set_too() -> None:
    names = {p.name for p in PERSONAS}
    assert set(SEEDS) <= names
    assert set(REALISTIC) <= names
    assert len(OVERLAYS) >= 1


def test_validate_the_example_set() -> None:
    result = mien("validate", "examples/personas", "examples/personas/overlays")
    assert (result.returncode, result.stdout) == (0, HIGHTRAFFIC_WARNING)
    total = len(PERSONAS) + len(OVERLAYS)
    assert result.stderr == f"{total} files valid, 3 warnings\n"


@pytest.mark.parametrize("path", PERSONAS, ids=lambda p: p.name)
def test_each_example_validates(path: Path) -> None:
    result = mien("validate", rel(path))
    assert result.returncode == 0, result.stdout
    assert result.stdout == (HIGHTRAFFIC_WARNING if path.name == "HighTraffic.yaml" else "")


@pytest.mark.parametrize("fmt", ["yaml", "json"])
@pytest.mark.parametrize("path", PERSONAS, ids=lambda p: p.name)
def test_render_round_trips(path: Path, fmt: str, tmp_path: Path) -> None:
    first = mien("render", rel(path), "--format", fmt, "--personas", "examples/personas")
    assert first.returncode == 0, first.stderr
    again_file = tmp_path / f"rendered.{fmt}"
    again_file.write_text(first.stdout)
    second = mien("render", again_file, "--format", fmt)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout


def test_render_yaml_and_json_agree() -> None:
    import yaml

    for path in PERSONAS:
        as_yaml = mien("render", rel(path)).stdout
        as_json = mien("render", rel(path), "--format", "json").stdout
        assert yaml.safe_load(as_yaml) == json.loads(as_json), path.name


def test_render_with_extends_and_overlays() -> None:
    result = mien(
        "render",
        "examples/personas/workstation.yaml",
        "--overlay",
        "examples/personas/overlays/eu-west.yaml",
        "-O",
        "examples/personas/overlays/on-call.yaml",
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["name"] == "workstation"
    assert "extends" not in data and "display_name" not in data
    assert data["labels"] == {
        "company": "acme",
        "managed_by": "platform-team",
        "team": "platform",
        "region": "eu-west",
    }
    assert data["behavioral_settings"] == {
        "security_scan_frequency": "weekly",
        "logging_level": "debug",
        "audit_log_retention": "90d",
    }
    assert data["environment_variables"]["TZ"] == "Europe/Dublin"
    assert data["environment_variables"]["HTTPS_PROXY"] == "http://proxy.acme.internal:3128"
    assert [a["name"] for a in data["required_applications"]] == [
        "git",
        "zsh",
        "podman",
        "pagerduty-cli",
    ]
    assert data["locked"] == [
        "behavioral_settings.security_scan_frequency",
        "environment_variables.HTTPS_PROXY",
        "environment_variables.NO_PROXY",
        "restricted_commands",
    ]


def test_render_shows_how_seed_004_phrases_are_read() -> None:
    result = mien("render", "examples/personas/HighTraffic.yaml")
    assert result.returncode == 0
    assert result.stderr == HIGHTRAFFIC_WARNING
    assert result.stdout == (
        """\
name: HighTraffic
required_applications:
- name: nginx
  version: latest
- name: redis
  purpose: caching
- name: prometheus
  purpose: metrics collection
adaptation_rules:
- name: cpu-load-80-for-5-minutes
  when: metrics.cpu_percent > 80.0
  for: 5m
  then:
  - action: scale
    cpu: 16
- name: network-latency-100ms
  when: metrics["latency_ms:default"] > 100.0
  then:
  - respond: activate-cdn-caching
external_data_sources:
- name: threatintel-example-com-latest-ips
  url: https://threatintel.example.com/latest_ips
  then:
  - action: firewall_block
    from: data
resource_requirements:
  cpu: 8
  memory: 32GB
  network_bandwidth: 10Gbps
"""
    )


def _rendered(name: str) -> dict[str, Any]:
    result = mien("render", f"examples/personas/{name}", "--format", "json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


USER_KEYED = ("application_configuration", "automated_responses")
ParseKind = DataSource.model_fields["parse"].annotation


def _field_paths(model: type, prefix: str) -> set[str]:
    return {f"{prefix}{info.alias or name}" for name, info in model.model_fields.items()}  # type: ignore[attr-defined]


def test_the_example_set_uses_every_field_of_the_language() -> None:
    """Across the example set (seeds, realistic set and overlays), every field of every model
    is used, and every value of every closed set."""
    rendered = [_rendered(p.name) for p in PERSONAS]
    used: set[str] = set()

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                # User-named entries (applications, responses) collapse to "*".
                here = f"{path}.*" if path in USER_KEYED else (f"{path}.{key}" if path else key)
                used.add(here)
                walk(item, here)
        elif isinstance(value, list):
            for item in value:
                walk(item, f"{path}[]")

    for data in rendered:
        walk(data, "")
    # A value equal to its default is left out of a render (a script's default timeout, a
    # data source's default poll interval): the source texts show those.
    texts = "\n".join(p.read_text() for p in [*PERSONAS, *OVERLAYS])
    if re.search(r"^\s+every: 5 minutes$", texts, re.M):
        used.add("external_data_sources[].every")
    if re.search(r"^extends: ", texts, re.M):  # composition resolves it away
        used.add("extends")

    expected = _field_paths(Persona, "")
    nested = {
        "os_settings.": OsSettings,
        "application_settings.": ApplicationSettings,
        "behavioral_settings.": BehavioralSettings,
        "application_configuration.*.": AppConfig,
        "required_applications[].": Package,
        "pre_activation_script.": Script,
        "post_activation_script.": Script,
        "adaptation_rules[].": Rule,
        "adaptation_rules[].then[].": Action,
        "external_data_sources[].": DataSource,
        "resource_requirements.": ResourceRequirements,
        "access_controls.": AccessControls,
        "access_controls.filesystem[].": FileAccess,
        "access_controls.network.": NetworkAccess,
    }
    for prefix, model in nested.items():
        expected |= _field_paths(model, prefix)
    assert sorted(expected - used) == []

    everything = json.dumps(rendered) + texts
    for field, literal in (("manager", Manager), ("format", ConfigFormat), ("parse", ParseKind)):
        for value in get_args(literal):
            pattern = rf'{field}:\s*{value}\b|"{field}": "{value}"'
            assert re.search(pattern, everything), f"{field}: {value} is not used"
    domains = {v for d in rendered for v in d.get("learning_domains", [])}
    assert domains == set(get_args(LearningDomain))
    levels = {v for d in rendered for v in d.get("trust_levels", {}).values()}
    assert levels == {"none", "low", "medium", "high"}
    frequencies = {
        v
        for d in rendered
        for k, v in d.get("behavioral_settings", {}).items()
        if k.endswith("_frequency")
    }
    assert {"daily", "weekly", "monthly"} <= frequencies
    assert any(f.startswith("every ") for f in frequencies)
    assert any(len(f.split()) == 5 for f in frequencies)


def test_schema_accepts_every_rendered_example() -> None:
    result = mien("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    validator = jsonschema_rs.validator_for(schema)
    for path in PERSONAS:
        data = _rendered(path.name)
        assert [str(e) for e in validator.iter_errors(data)] == [], path.name


# --- bad files -----------------------------------------------------------------------------

BOMB = (
    b'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    b"b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    b"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    b"f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
)

BAD_FILES: list[tuple[str, bytes, str]] = [
    (
        "binary.yaml",
        b"\x7fELF\x02\x01\x01\0\0\0",
        "binary.yaml:1:1: (document): not a text document (binary data at byte 7)",
    ),
    (
        "empty.yaml",
        b"",
        "empty.yaml:1:1: (document): empty document: expected a persona (a YAML or JSON mapping)",
    ),
    (
        "bomb.yaml",
        BOMB,
        "bomb.yaml:6:8: (document): document expands to more than 100,000 values (an alias bomb, or far too large for a persona)",
    ),
    (
        "deep.yaml",
        b"a: " + b"[" * 50_000 + b"]" * 50_000,
        "deep.yaml:1:35: (document): nested more than 32 levels deep",
    ),
    (
        "deep.json",
        b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        "deep.json:1:1: (document): nested more than 32 levels deep",
    ),
    ("twice.yaml", b"name: a\nname: b\n", "twice.yaml:2:1: name: duplicate key 'name'"),
    (
        "multi.yaml",
        b"name: a\n---\nname: b\n",
        "multi.yaml:2:1: (document): more than one YAML document: put each persona in its own file",
    ),
    (
        "latin1.yaml",
        b"name: caf\xe9\n",
        "latin1.yaml:1:1: (document): not UTF-8 text (invalid byte at offset 9)",
    ),
    (
        "list.yaml",
        b"- a\n- b\n",
        "list.yaml:1:1: (document): a persona is a mapping of fields, but this document is a list",
    ),
    (
        "cel.yaml",
        b"adaptation_rules:\n  - when: metrics.cpu_percent > && true\n    then: [{action: notify}]\n",
        "cel.yaml:2:33: adaptation_rules[0].when: Syntax error: unexpected '&&'",
    ),
    (
        "surrogate.json",
        b'{"name": "s",\n "environment_variables": {"A": "\\ud800"}}',
        "surrogate.json:2:33: environment_variables.A: \\ud800 is half of a UTF-16 surrogate "
        "pair, not a character: write the character itself (or \\U0001F600 for one beyond "
        "\\uFFFF)",
    ),
    (
        "huge.yaml",
        b"name: h\nos_settings:\n  swappiness: " + b"9" * 5000 + b"\n",
        "huge.yaml:3:15: os_settings.swappiness: an integer of 5,000 digits is out of range "
        "(at most 64 bits)",
    ),
]


@pytest.mark.parametrize(("name", "raw", "line"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_validate_refuses_bad_files(name: str, raw: bytes, line: str, tmp_path: Path) -> None:
    (tmp_path / name).write_bytes(raw)
    result = mien("validate", name, cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        line + "\n",
        "1 problem in 1 file\n",
    )


def test_validate_refuses_a_50_megabyte_file(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as fh:
        fh.write(b"name: big\ndescription: ")
        fh.write(b"x" * (50 * 1024 * 1024))
    result = mien("validate", "big.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == (
        "big.yaml:1:1: (document): document is 2,097,153 bytes; the limit is 2,097,152 "
        "(a persona is a few KiB: split large files or data out of it)\n"
    )


def test_validate_prints_every_problem_of_every_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "nmae: a\nresource_requirements: {cpu: 0, memory: lots}\n"
        "behavioral_settings: {auto_update_frequency: every 7h}\n"
    )
    (tmp_path / "b.json").write_text('{"environment_variables": {"1X": "y"}, "decay_rate": 3}')
    (tmp_path / "good.yaml").write_text("name: good\n")
    result = mien("validate", "a.yaml", "b.json", "good.yaml", "missing.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == (
        "a.yaml:1:1: nmae: unknown field; did you mean 'name'?\n"
        "a.yaml:2:30: resource_requirements.cpu: 0: CPU cores must be more than 0 and at most 4096\n"
        "a.yaml:2:41: resource_requirements.memory: 'lots' is not a size: write e.g. 512MiB, 4GiB or 32GB\n"
        "a.yaml:3:46: behavioral_settings.auto_update_frequency: every 7h cannot be a cron schedule: "
        "7 does not divide 24 hours evenly; pick a divisor or write a cron expression\n"
        "b.json:1:28: environment_variables.1X: '1X' is not a valid environment variable name "
        "(letters, digits and _, not starting with a digit)\n"
        "b.json:1:54: decay_rate: must be less than or equal to 1\n"
        "missing.yaml: no such file\n"
    )
    assert result.stderr == "7 problems in 3 files\n"


def test_validate_json_output(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("decay_rate: 3\n")
    (tmp_path / "good.yaml").write_text("name: good\n")
    result = mien("validate", "--output", "json", "bad.yaml", "good.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert json.loads(result.stdout) == {
        "valid": False,
        "summary": "1 problem in 1 file",
        "files": [
            {
                "file": "bad.yaml",
                "persona": None,
                "valid": False,
                "problems": [
                    {
                        "source": "bad.yaml",
                        "line": 1,
                        "column": 13,
                        "path": "decay_rate",
                        "message": "must be less than or equal to 1",
                        "severity": "error",
                    }
                ],
            },
            {"file": "good.yaml", "persona": "good", "valid": True, "problems": []},
        ],
    }


def test_warnings_do_not_fail_unless_strict(tmp_path: Path) -> None:
    (tmp_path / "w.yaml").write_text(
        "adaptation_rules:\n  - {when: 'true', then: [{respond: nope}]}\n"
    )
    line = (
        "w.yaml:2:37: adaptation_rules[0].then[0].respond: warning: response 'nope' is not "
        "defined under automated_responses: it will be reported as 'no handler'\n"
    )
    result = mien("validate", "w.yaml", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        line,
        "1 file valid, 1 warning\n",
    )
    result = mien("validate", "--strict", "w.yaml", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, line)


def test_validate_a_directory_without_personas(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = mien("validate", "empty", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (
        1,
        "empty: no persona files (.yaml, .yml, .json) in this directory\n",
    )


# --- extends across directories ------------------------------------------------------------


@pytest.fixture
def company(tmp_path: Path) -> Path:
    (tmp_path / "shared").mkdir()
    (tmp_path / "team").mkdir()
    (tmp_path / "shared" / "base.yaml").write_text(
        "name: base\nlocked: [restricted_commands]\nrestricted_commands: [reboot]\n"
        "os_settings: {theme: light}\n"
    )
    (tmp_path / "team" / "dev.yaml").write_text("extends: base\nos_settings: {theme: dark}\n")
    return tmp_path


def test_extends_needs_the_parent_directory(company: Path) -> None:
    result = mien("validate", "team/dev.yaml", cwd=company)
    assert result.returncode == 1
    assert result.stdout == (
        "team/dev.yaml:1:10: extends: persona 'base' not found (looked in team) "
        "(extends chain: dev → base)\n"
    )
    result = mien("validate", "team/dev.yaml", "--personas", "shared", cwd=company)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "1 file valid\n")
    result = mien("render", "team/dev.yaml", "-p", "shared", cwd=company)
    assert result.stdout == (
        "name: dev\nlocked:\n- restricted_commands\nos_settings:\n  theme: dark\n"
        "restricted_commands:\n- reboot\n"
    )


def test_extends_cycle_is_reported_with_its_chain(company: Path) -> None:
    (company / "team" / "a.yaml").write_text("extends: b\n")
    (company / "team" / "b.yaml").write_text("extends: a\n")
    result = mien("validate", "team/a.yaml", cwd=company)
    assert (result.returncode, result.stdout) == (
        1,
        "team/a.yaml:1:10: extends: cannot compose with 'b': see the problems in team/b.yaml\n"
        "team/b.yaml:1:10: extends: extends cycle: a → b → a\n",
    )


def test_a_broken_parent_fails_its_children(company: Path) -> None:
    (company / "shared" / "base.yaml").write_text("name: base\ndecay_rate: 9\n")
    result = mien("validate", "team/dev.yaml", "-p", "shared", cwd=company)
    assert result.returncode == 1
    assert result.stdout == (
        "team/dev.yaml:1:10: extends: cannot compose with 'base': see the problems in "
        "shared/base.yaml\nshared/base.yaml:2:13: decay_rate: must be less than or equal to 1\n"
    )
    assert result.stderr == "2 problems in 2 files\n"


def test_render_refuses_an_invalid_overlay(company: Path) -> None:
    (company / "bad-overlay.yaml").write_text(
        "os_settings: {theme: dark}\nlearning_domains: [dreams]\n"
    )
    result = mien("render", "team/dev.yaml", "-p", "shared", "-O", "bad-overlay.yaml", cwd=company)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "bad-overlay.yaml:2:20: learning_domains[0]: must be one of: 'metrics', 'system_logs', "
        "'network_traffic', 'api_calls', 'processes', 'file_access' or 'auth_events'\n"
        "mien: 1 problem in 1 file; nothing to show\n"
    )


# --- explain -------------------------------------------------------------------------------


def explain(*args: str) -> Run:
    return mien("explain", *args, cwd=EXAMPLES)


def test_explain_a_value_and_what_it_overrode() -> None:
    result = explain("workstation.yaml", "environment_variables.TZ", "-O", "overlays/eu-west.yaml")
    assert (result.returncode, result.stdout) == (
        0,
        "environment_variables.TZ: Europe/Dublin\n"
        "set by overlays/eu-west.yaml:7:7\n"
        "overrode base.yaml:26:7 (Etc/UTC)\n",
    )


def test_explain_a_deleted_value() -> None:
    result = explain(
        "workstation.yaml",
        "behavioral_settings.auto_update_frequency",
        "-O",
        "overlays/eu-west.yaml",
        "-O",
        "overlays/on-call.yaml",
    )
    assert result.stdout == (
        "behavioral_settings.auto_update_frequency: (deleted)\n"
        "deleted by overlays/on-call.yaml:6:26\n"
        "overrode workstation.yaml:26:26 (30 3 * * 1-5)\n"
        "overrode base.yaml:17:26 (daily)\n"
    )


def test_explain_inside_a_list() -> None:
    result = explain("web-server-under-load.yaml", "adaptation_rules[0]")
    assert result.stdout == (
        "adaptation_rules[0]:\n"
        "  name: cpu-load-95-for-2-minutes\n"
        "  when: metrics.cpu_percent > 95.0\n"
        "  for: 2m\n"
        "  then:\n"
        "  - action: notify\n"
        "    message: ops on-call\n"
        "set by web-server-under-load.yaml:81:5 (with all of adaptation_rules)\n"
    )


def test_explain_json() -> None:
    result = explain("kiosk.yaml", "default_persona", "--output", "json")
    assert json.loads(result.stdout) == {
        "key": "default_persona",
        "value": True,
        "deleted": False,
        "default": False,
        "origins": [
            {
                "key": "default_persona",
                "part_of": None,
                "deleted": False,
                "set_by": "kiosk.yaml:6:18",
                "overrode": [],
            }
        ],
    }


@pytest.mark.parametrize(
    ("key", "status", "message"),
    [
        (
            "priority_metric",
            1,
            "mien: 'priority_metric' is not a persona field; did you mean 'priority_metrics'?\n",
        ),
        (
            "os_settings.wallpaper",
            1,
            "mien: os_settings.wallpaper is not set (os_settings has theme, terminal_shell, screen_blank_after)\n",
        ),
        (
            "restricted_commands[99]",
            1,
            "mien: restricted_commands[99] is not set (restricted_commands has 20 items)\n",
        ),
        ("a..b", 2, "mien: 'a..b' is not a key path such as os_settings.theme\n"),
    ],
)
def test_explain_unknown_keys(key: str, status: int, message: str) -> None:
    result = explain("kiosk.yaml", key)
    assert (result.returncode, result.stdout, result.stderr) == (status, "", message)


# --- usage ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["validate"],
        ["render"],
        ["explain", "examples/personas/kiosk.yaml"],
        ["validate", "--bogus", "examples/personas/kiosk.yaml"],
        ["render", "examples/personas/kiosk.yaml", "--format", "xml"],
        ["validate", "--personas", "no/such/dir", "examples/personas/kiosk.yaml"],
        ["schema", "extra"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = mien(*args)
    assert result.returncode == 2
    assert result.stdout == "" or "Usage: mien" in result.stdout


def test_missing_file_to_render_is_a_problem_not_a_traceback() -> None:
    result = mien("render", "no-such-persona.yaml")
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        "no-such-persona.yaml: no such file\nmien: 1 problem in 1 file; nothing to show\n",
    )


@pytest.mark.parametrize("command", ["validate", "render", "explain", "schema"])
def test_help_teaches_with_examples(command: str) -> None:
    result = mien(command, "--help")
    assert result.returncode == 0
    assert "Example" in result.stdout
    assert f"mien {command} " in result.stdout.split("Example", 1)[1]


# --- the reference stays accurate ----------------------------------------------------------

DOC = REPO / "docs" / "persona-language.md"


def test_reference_names_every_field_phrase_and_closed_value() -> None:
    from mien.spec import phrases
    from mien.spec.models import TOP_LEVEL_FIELDS

    text = DOC.read_text()
    for field in TOP_LEVEL_FIELDS:
        assert f"`{field}`" in text, field
    for phrase in phrases.METRICS:
        assert f"`{phrase}`" in text, phrase
    for literal in (Manager, ConfigFormat, LearningDomain, ParseKind):
        for value in get_args(literal):
            assert value in text, value
    for command in ("validate", "render", "explain", "schema"):
        assert f"`mien {command}" in text, command


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        (
            "resource_requirements: {memory: '512'}\n",
            "'512' needs a unit: write e.g. 512MiB or 512GiB",
        ),
        (
            "resource_requirements: {network_bandwidth: 10 GB/s}\n",
            "'10 GB/s' is bytes per second; write bits per second: 80Gbps",
        ),
        (
            "behavioral_settings: {auto_update_frequency: every 7h}\n",
            "every 7h cannot be a cron schedule: 7 does not divide 24 hours evenly; pick a divisor or write a cron expression",
        ),
        (
            "access_controls: {filesystem: [{path: srv/data}]}\n",
            "'srv/data' is not an absolute path (start with /, ~/ or {home}/)",
        ),
    ],
)
def test_reference_quotes_real_messages(snippet: str, message: str, tmp_path: Path) -> None:
    assert f"`{message}`" in DOC.read_text()
    (tmp_path / "p.yaml").write_text(snippet)
    result = mien("validate", "p.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.rstrip("\n").endswith(message)


def test_a_broken_parent_checked_with_its_child_is_reported_once(company: Path) -> None:
    (company / "team" / "base.yaml").write_text("name: base\ndecay_rate: 9\n")
    result = mien("validate", "team", cwd=company)
    assert result.returncode == 1
    assert result.stdout == (
        "team/base.yaml:2:13: decay_rate: must be less than or equal to 1\n"
        "team/dev.yaml:1:10: extends: cannot compose with 'base': see the problems in "
        "team/base.yaml\n"
    )
    assert result.stderr == "2 problems in 2 files\n"
    as_json = json.loads(mien("validate", "-o", "json", "team", cwd=company).stdout)
    assert [(f["file"], f["valid"], len(f["problems"])) for f in as_json["files"]] == [
        ("team/base.yaml", False, 1),
        ("team/dev.yaml", False, 1),
    ]
