"""``mien rules test``: a persona's rules stepped over samples from a file, the real command.

Exit status 0 when no rule fired, 1 when one did (its actions run, refused or suppressed),
2 for bad input with the file and the place named, and no traceback ever.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import EXAMPLES, run_mien

PERSONA = """\
name: hot
learning_domains: [metrics]
priority_metrics: {performance: 0.8, cost: 0.2}
trust_levels: {file_system_modification: low, process_control: low}
adaptation_rules:
  - name: busy
    when: metrics.cpu_percent > 40.0
    for: 5s
    clear_when: metrics.cpu_percent < 30.0
    clear_for: 3s
    serves: performance
    then:
      - {action: set_setting, key: os_settings.power_profile, value: performance}
      - {action: run, command: "systemctl isolate rescue.target"}
  - name: quiet
    when: metrics.cpu_percent < 35.0
    serves: cost
    then: [{action: set_setting, key: os_settings.power_profile, value: power-saver}]
  - name: memory
    when: metrics.memory_percent > 90.0
    then: [{action: notify}]
"""


def files(tmp_path: Path, samples: Any, persona: str = PERSONA) -> tuple[Path, Path]:
    p = tmp_path / "hot.yaml"
    p.write_text(persona)
    s = tmp_path / "samples.json"
    s.write_text(json.dumps(samples))
    return p, s


def cpu(*points: tuple[float, float]) -> list[dict[str, Any]]:
    return [{"at": at, "metrics": {"cpu_percent": value}} for at, value in points]


def test_a_sequence_goes_pending_firing_resolving_inactive(tmp_path: Path) -> None:
    persona, samples = files(tmp_path, cpu((0, 50), (4, 60), (5, 60), (6, 35), (7, 20), (10, 20)))
    run = run_mien("rules", "test", persona, "--metrics", samples)
    assert run.returncode == 1, run.stderr
    assert run.stderr == ""
    out = run.stdout
    assert "at 0s\n  busy: inactive → pending: `when` holds; fires after 5s" in out
    assert "at 5s\n  busy: pending → firing: `when` held for 5s (`for` 5s)" in out
    assert (
        '    set_setting os_settings.power_profile="performance": would run\n'
        "    run command=systemctl isolate rescue.target: refused: needs process_control "
        "trust high, the persona grants low\n"
    ) in out
    assert "at 7s\n  busy: firing → resolving: `clear_when`; resolves after 3s" in out
    assert "at 10s\n  busy: resolving → inactive: clear condition held for 3s" in out
    assert "  busy: resolved: its automated changes would be reverted" in out
    # `quiet` fired at 7s too, wanting the opposite setting: the heavier goal is still
    # firing (resolving), so it is suppressed.
    assert (
        'set_setting os_settings.power_profile="power-saver": suppressed by busy '
        "(a heavier priority)"
    ) in out
    assert "  memory: inactive since 0s, when unknown\n" in out
    assert "    inactive: `when` is unknown (metrics.memory_percent missing)\n" in out


def test_nothing_fires_exit_0_and_json(tmp_path: Path) -> None:
    persona, samples = files(tmp_path, {"metrics": {"cpu_percent": 38, "memory_percent": 10}})
    run = run_mien("rules", "test", persona, "--metrics", samples, "--output", "json")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["fired"] is False and doc["samples"] == 1
    rules = {r["rule"]: r for r in doc["rules"]}
    assert rules["busy"]["when"] == "false" and rules["memory"]["when"] == "false"
    assert rules["busy"]["actions"][1] == {
        "action": "run",
        "params": {"command": "systemctl isolate rescue.target"},
        "risk": "process_control",
        "needs": "high",
        "granted": "low",
        "allowed": False,
    }


def test_restart_mid_for_is_what_at_times_say(tmp_path: Path) -> None:
    # Pending since 0: a sample at 5 fires, however far apart the samples are.
    persona, samples = files(tmp_path, cpu((0, 50), (5, 50)))
    run = run_mien("rules", "test", persona, "--metrics", samples, "-o", "json")
    steps = json.loads(run.stdout)["steps"]
    assert [t["to"] for s in steps for t in s["transitions"] if t["rule"] == "busy"] == [
        "pending",
        "firing",
    ]


def test_data_source_payload(tmp_path: Path) -> None:
    ips = tmp_path / "ips.txt"
    ips.write_text("# blocklist\n192.0.2.1\n\n198.51.100.0/24\n")
    samples = tmp_path / "s.json"
    samples.write_text("[{}]")
    run = run_mien(
        "rules",
        "test",
        EXAMPLES / "web-server-under-load.yaml",
        "--metrics",
        samples,
        "--data",
        f"threat-intel={ips}",
        "--personas",
        EXAMPLES,
        "-o",
        "json",
    )
    assert run.returncode == 1, run.stderr
    fired = json.loads(run.stdout)["steps"][0]["fire"]
    assert [(f["rule"], f["params"]["addresses"], f["runs"]) for f in fired] == [
        ("source:threat-intel", ["192.0.2.1", "198.51.100.0/24"], True)
    ]


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (
            '[{"metrics": {"cpu_percent": "hot"}}]',
            "S: samples[0].metrics.cpu_percent: must be a number",
        ),
        ('[{}, {"at": -1}]', "S: samples[1].at: -1 is before the previous sample (0)"),
        (
            '[{"metric": {}}]',
            "S: samples[0].metric: unknown key (a sample has at, metrics, events, baseline, anomaly)",
        ),
        ("[1]", "S: samples[0]: must be an object with metrics, events, …"),
        ("[]", "S: no samples (give a list of objects, or one object)"),
        (
            '{"metrics": {\n  "a": 1,\n}}',
            "S:3:1: not JSON: Expecting property name enclosed in double quotes",
        ),
    ],
)
def test_bad_samples_exit_2_naming_file_and_place(
    tmp_path: Path, samples: str, message: str
) -> None:
    persona, _ = files(tmp_path, [])
    path = tmp_path / "s.json"
    path.write_text(samples)
    run = run_mien("rules", "test", persona, "--metrics", path)
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr == f"mien: {message.replace('S', str(path), 1)}\n"


def test_bad_persona_data_and_files_exit_2(tmp_path: Path) -> None:
    persona, samples = files(tmp_path, [{}], PERSONA.replace("action: notify", "action: notfy"))
    run = run_mien("rules", "test", persona, "--metrics", samples)
    assert run.returncode == 2
    assert (
        "hot.yaml:21:21: adaptation_rules[2].then[0].action: unknown action 'notfy'" in run.stderr
    )
    good, samples = files(tmp_path, [{}])
    for args, message in [
        (["--data", "x"], "--data 'x': write NAME=FILE"),
        (
            ["--data", "feed=x.txt"],
            "--data 'feed=x.txt': the persona has no data source 'feed' (none)",
        ),
    ]:
        run = run_mien("rules", "test", good, "--metrics", samples, *args)
        assert (run.returncode, run.stderr) == (2, f"mien: {message}\n")
    run = run_mien("rules", "test", good, "--metrics", tmp_path / "missing.json")
    assert (run.returncode, run.stderr) == (
        2,
        f"mien: {tmp_path / 'missing.json'}: no such samples file\n",
    )
    binary = tmp_path / "b.json"
    binary.write_bytes(b"\xff\xfe")
    run = run_mien("rules", "test", good, "--metrics", binary)
    assert (run.returncode, run.stderr) == (2, f"mien: {binary}: not UTF-8 text (byte 0)\n")
    assert "Traceback" not in run.stderr
