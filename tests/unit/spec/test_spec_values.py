"""Value types, table-driven: every accepted spelling and its canonical form, every error.

Each accepted case also checks that the canonical form reads back to the same value, which
is what makes ``mien render`` of its own output give the same output.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from mien.spec.frequency import Frequency
from mien.spec.values import Bandwidth, CpuCount, Duration, Size
from tests.unit.spec.spec_helpers import doc, problem

# --- durations -----------------------------------------------------------------------------

DURATIONS: list[tuple[Any, float, str]] = [
    ("30s", 30, "30s"),
    ("5m", 300, "5m"),
    ("2h", 7200, "2h"),
    ("1d", 86400, "1d"),
    ("1w", 604800, "7d"),
    ("250ms", 0.25, "250ms"),
    ("1h30m", 5400, "1h30m"),
    ("1.5h", 5400, "1h30m"),
    ("90s", 90, "1m30s"),
    ("3600s", 3600, "1h"),
    ("1d1ms", 86400.001, "1d1ms"),
    ("5 minutes", 300, "5m"),
    ("1 minute", 60, "1m"),
    ("10 secs", 10, "10s"),
    ("1 second", 1, "1s"),
    ("2 hrs", 7200, "2h"),
    ("1 hour", 3600, "1h"),
    ("3 days", 259200, "3d"),
    ("1 week", 604800, "7d"),
    ("2 hours and 30 minutes", 9000, "2h30m"),
    ("1h, 30m", 5400, "1h30m"),
    ("  5M  ", 300, "5m"),
    (300, 300, "5m"),
    (1.5, 1.5, "1s500ms"),
    (0, 0, "0s"),
    ("0s", 0, "0s"),
    ("0.0001s", 0.0001, "0s"),
]


@pytest.mark.parametrize(("raw", "seconds", "canonical"), DURATIONS)
def test_duration_spellings(raw: Any, seconds: float, canonical: str) -> None:
    value = Duration.parse(raw)
    assert value.seconds == pytest.approx(seconds)
    assert str(value) == canonical
    assert str(Duration.parse(str(value))) == canonical


DURATION_ERRORS: list[tuple[Any, str]] = [
    ("300", "'300' is not a duration: write e.g. 30s, 5m, 2h, 1d or 1h30m"),
    ("", "'' is not a duration: write e.g. 30s, 5m, 2h, 1d or 1h30m"),
    ("-5m", "'-5m' is not a duration: write e.g. 30s, 5m, 2h, 1d or 1h30m"),
    ("m5", "'m5' is not a duration: write e.g. 30s, 5m, 2h, 1d or 1h30m"),
    ("5m garbage", "'5m garbage' is not a duration: write e.g. 30s, 5m, 2h, 1d or 1h30m"),
    ("5 parsecs", "'5 parsecs': unknown time unit 'parsecs' (use ms, s, m, h, d or w)"),
    (-1, "a duration cannot be negative"),
    (True, "expected a duration such as 30s, 5m, 2h or 1d, not a boolean"),
    (None, "expected a duration such as 30s, 5m, 2h or 1d"),
    ([1], "expected a duration such as 30s, 5m, 2h or 1d"),
    # Too long to be a time at all (YAML reads 1e400 as infinity): refused, never a crash
    # later when the value is printed or added to a clock.
    (float("inf"), "a duration must be a finite number of seconds"),
    (float("nan"), "a duration must be a finite number of seconds"),
    ("9" * 400 + "d", "a duration must be a finite number of seconds"),
]


@pytest.mark.parametrize(("raw", "message"), DURATION_ERRORS)
def test_duration_errors(raw: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        Duration.parse(raw)
    assert str(info.value) == message


# --- frequencies ---------------------------------------------------------------------------

FREQUENCIES: list[tuple[str, str]] = [
    ("hourly", "hourly"),
    ("daily", "daily"),
    ("weekly", "weekly"),
    ("monthly", "monthly"),
    ("yearly", "yearly"),
    ("Daily", "daily"),
    ("@weekly", "weekly"),
    ("  daily  ", "daily"),
    ("every 6h", "every 6h"),
    ("every    6h", "every 6h"),
    ("every 1 hour", "every 1h"),
    ("every 30m", "every 30m"),
    ("every 1m", "every 1m"),
    ("every 2d", "every 2d"),
    ("every 60m", "every 1h"),
    ("*/5 * * * *", "*/5 * * * *"),
    ("30 2 * * 1", "30 2 * * 1"),
    ("30  2 * *  1", "30 2 * * 1"),
    ("0 4 * * mon-fri", "0 4 * * mon-fri"),
    ("0 0 1 jan *", "0 0 1 jan *"),
    ("0,30 8-18 * * 1-5", "0,30 8-18 * * 1-5"),
]


@pytest.mark.parametrize(("raw", "canonical"), FREQUENCIES)
def test_frequency_spellings(raw: str, canonical: str) -> None:
    value = Frequency.parse(raw)
    assert str(value) == canonical
    assert str(Frequency.parse(str(value))) == canonical


FREQUENCY_ERRORS: list[tuple[Any, str]] = [
    (
        "sometimes",
        "'sometimes' is not a frequency: use hourly, daily, weekly, monthly, yearly, "
        "'every <duration>' (e.g. every 6h) or a 5-field cron expression",
    ),
    (
        "* * * *",
        "'* * * *' is not a frequency: use hourly, daily, weekly, monthly, yearly, "
        "'every <duration>' (e.g. every 6h) or a 5-field cron expression",
    ),
    (5, "expected a frequency: hourly, daily, weekly, monthly, 'every 6h' or a cron line"),
    (None, "expected a frequency: hourly, daily, weekly, monthly, 'every 6h' or a cron line"),
    ("every 30s", "'every 30s': schedules run at most once a minute"),
    ("every 0m", "'every 0m': schedules run at most once a minute"),
    ("every 90s", "every 1m30s: cron schedules have whole minutes"),
    (
        "every 7h",
        "every 7h cannot be a cron schedule: 7 does not divide 24 hours evenly; "
        "pick a divisor or write a cron expression",
    ),
    (
        "every 45m",
        "every 45m cannot be a cron schedule: 45 does not divide 60 minutes evenly; "
        "pick a divisor or write a cron expression",
    ),
    ("every 32d", "every 32d is longer than cron can express (31 days)"),
    ("every soon", "'soon' is not a duration: write e.g. 30s, 5m, 2h, 1d or 1h30m"),
    ("60 * * * *", "cron minute field '60': '60' is outside 0-59"),
    ("* 24 * * *", "cron hour field '24': '24' is outside 0-23"),
    ("0 0 32 * *", "cron day of month field '32': '32' is outside 1-31"),
    ("0 0 * 13 *", "cron month field '13': '13' is outside 1-12"),
    ("0 0 * * 8", "cron day of week field '8': '8' is outside 0-7"),
    ("0 0 * * funday", "cron day of week field 'funday': 'funday' is outside 0-7"),
    ("*/0 * * * *", "cron minute field '*/0': step must be a positive number"),
    ("*/x * * * *", "cron minute field '*/x': step must be a positive number"),
]


@pytest.mark.parametrize(("raw", "message"), FREQUENCY_ERRORS)
def test_frequency_errors(raw: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        Frequency.parse(raw)
    assert str(info.value) == message


CRON: list[tuple[str, str]] = [
    ("every 1m", "* * * * *"),
    ("every 15m", "*/15 * * * *"),
    ("*/5 * * * *", "*/5 * * * *"),
    ("30 2 * * 1", "30 2 * * 1"),
]


@pytest.mark.parametrize(("raw", "cron"), CRON)
def test_frequency_to_cron_fixed(raw: str, cron: str) -> None:
    assert Frequency.parse(raw).to_cron("any-seed") == cron


@pytest.mark.parametrize(
    ("raw", "shape"),
    [
        ("hourly", r"^\d+ \* \* \* \*$"),
        ("every 1h", r"^\d+ \* \* \* \*$"),
        ("every 6h", r"^\d+ \*/6 \* \* \*$"),
        ("daily", r"^\d+ [0-5] \* \* \*$"),
        ("every 24h", r"^\d+ [0-5] \* \* \*$"),
        ("every 2d", r"^\d+ [0-5] \*/2 \* \*$"),
        ("weekly", r"^\d+ [0-5] \* \* [0-6]$"),
        ("monthly", r"^\d+ [0-5] \d+ \* \*$"),
        ("yearly", r"^\d+ [0-5] \d+ \d+ \*$"),
    ],
)
def test_keyword_schedules_are_spread_by_seed(raw: str, shape: str) -> None:
    """Keywords get a minute (and a quiet hour) from the seed, so a fleet does not run the
    same job at the same moment; the same seed always gives the same schedule."""
    freq = Frequency.parse(raw)
    schedules = {freq.to_cron(f"persona-{i}:auto_update_frequency") for i in range(40)}
    assert len(schedules) > 10
    for cron in schedules:
        assert re.match(shape, cron), cron
        Frequency.parse(cron)  # every generated schedule is itself a valid frequency
    assert freq.to_cron("x") == freq.to_cron("x")


# --- sizes, bandwidths, CPUs ---------------------------------------------------------------

SIZES: list[tuple[str, int, str]] = [
    ("512MiB", 512 * 1024**2, "512MiB"),
    ("4GiB", 4 * 1024**3, "4GiB"),
    ("4 GiB", 4 * 1024**3, "4GiB"),
    ("4Gi", 4 * 1024**3, "4GiB"),
    ("1TiB", 1024**4, "1TiB"),
    ("1KiB", 1024, "1KiB"),
    ("1.5GiB", 1536 * 1024**2, "1536MiB"),
    ("32 GB", 32 * 1000**3, "32GB"),
    ("32GB", 32 * 1000**3, "32GB"),
    ("2 gb", 2 * 1000**3, "2GB"),
    ("1.5 GB", 1500 * 1000**2, "1500MB"),
    ("100kB", 100_000, "100kB"),
    ("1K", 1000, "1kB"),
    ("1000000B", 1_000_000, "1MB"),
    ("1024B", 1024, "1024B"),
    ("512 bytes", 512, "512B"),
    ("0B", 0, "0B"),
]


@pytest.mark.parametrize(("raw", "size", "canonical"), SIZES)
def test_size_spellings(raw: str, size: int, canonical: str) -> None:
    value = Size.parse(raw)
    assert value.bytes == size
    assert str(value) == canonical
    assert Size.parse(str(value)).bytes == size


SIZE_ERRORS: list[tuple[Any, str]] = [
    ("512", "'512' needs a unit: write e.g. 512MiB or 512GiB"),
    (512, "512 needs a unit: write e.g. 512MiB or 512GiB"),
    ("lots", "'lots' is not a size: write e.g. 512MiB, 4GiB or 32GB"),
    ("5 XB", "'5 XB' is not a size: write e.g. 512MiB, 4GiB or 32GB"),
    ("-1GiB", "'-1GiB' is not a size: write e.g. 512MiB, 4GiB or 32GB"),
    (True, "expected a size such as 512MiB, 4GiB or 32GB"),
    (None, "expected a size such as 512MiB, 4GiB or 32GB"),
    (1.5, "expected a size such as 512MiB, 4GiB or 32GB"),
]


@pytest.mark.parametrize(("raw", "message"), SIZE_ERRORS)
def test_size_errors(raw: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        Size.parse(raw)
    assert str(info.value) == message


BANDWIDTHS: list[tuple[str, int, str]] = [
    ("100Mbps", 100_000_000, "100Mbps"),
    ("10 Gbps", 10_000_000_000, "10Gbps"),
    ("10 GBPS", 10_000_000_000, "10Gbps"),
    ("1 Gbit/s", 1_000_000_000, "1Gbps"),
    ("100 Mb/s", 100_000_000, "100Mbps"),
    ("1.5Gbps", 1_500_000_000, "1500Mbps"),
    ("500kbps", 500_000, "500kbps"),
    ("1000bps", 1000, "1kbps"),
    ("1Tbps", 10**12, "1Tbps"),
]


@pytest.mark.parametrize(("raw", "bits", "canonical"), BANDWIDTHS)
def test_bandwidth_spellings(raw: str, bits: int, canonical: str) -> None:
    value = Bandwidth.parse(raw)
    assert value.bits_per_second == bits
    assert str(value) == canonical
    assert Bandwidth.parse(str(value)) == value


BANDWIDTH_ERRORS: list[tuple[Any, str]] = [
    ("100", "'100' is not a bandwidth: write e.g. 100Mbps or 10Gbps"),
    (100, "100 is not a bandwidth: write e.g. 100Mbps or 10Gbps"),
    ("fast", "'fast' is not a bandwidth: write e.g. 100Mbps or 10Gbps"),
    ("10 GB/s", "'10 GB/s' is bytes per second; write bits per second: 80Gbps"),
    ("10GBps", "'10GBps' is bytes per second; write bits per second: 80Gbps"),
    ("1 kB/s", "'1 kB/s' is bytes per second; write bits per second: 8kbps"),
]


@pytest.mark.parametrize(("raw", "message"), BANDWIDTH_ERRORS)
def test_bandwidth_errors(raw: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        Bandwidth.parse(raw)
    assert str(info.value) == message


CPUS: list[tuple[Any, float, Any]] = [
    (2, 2, 2),
    (0.5, 0.5, 0.5),
    ("1.5", 1.5, 1.5),
    ("8 cores", 8, 8),
    ("1 core", 1, 1),
    ("2 cpus", 2, 2),
    ("2 CPU", 2, 2),
    ("4 vcpus", 4, 4),
    ("500m", 0.5, 0.5),
    ("4096", 4096, 4096),
]


@pytest.mark.parametrize(("raw", "cores", "canonical"), CPUS)
def test_cpu_spellings(raw: Any, cores: float, canonical: Any) -> None:
    value = CpuCount.parse(raw)
    assert value.cores == cores
    assert value.canonical() == canonical
    assert type(value.canonical()) is type(canonical)
    assert CpuCount.parse(value.canonical()) == value


CPU_ERRORS: list[tuple[Any, str]] = [
    (0, "0: CPU cores must be more than 0 and at most 4096"),
    (-1, "-1: CPU cores must be more than 0 and at most 4096"),
    (5000, "5000: CPU cores must be more than 0 and at most 4096"),
    ("0m", "'0m': CPU cores must be more than 0 and at most 4096"),
    ("many", "'many' is not a CPU count: write e.g. 2, 0.5, '8 cores' or 500m"),
    (True, "expected a number of CPU cores such as 2, 0.5 or '8 cores'"),
]


@pytest.mark.parametrize(("raw", "message"), CPU_ERRORS)
def test_cpu_errors(raw: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        CpuCount.parse(raw)
    assert str(info.value) == message


# --- values inside a persona: the message the user sees, positioned -----------------------

IN_DOCUMENT: list[tuple[str, str]] = [
    # weights in [0, 1]; need not sum to 1, but not all 0
    (
        "priority_metrics: {performance: 1.5}\n",
        "p.yaml:1:33: priority_metrics.performance: must be less than or equal to 1",
    ),
    (
        "priority_metrics: {security: -0.1}\n",
        "p.yaml:1:30: priority_metrics.security: must be greater than or equal to 0",
    ),
    (
        "priority_metrics: {cost: true}\n",
        "p.yaml:1:26: priority_metrics.cost: expected a number between 0 and 1, not a boolean",
    ),
    (
        "priority_metrics: {cost: abc}\n",
        "p.yaml:1:26: priority_metrics.cost: must be a valid number, "
        "unable to parse string as a number",
    ),
    (
        "priority_metrics: {performance: 0, security: 0.0}\n",
        "p.yaml:1:19: priority_metrics: at least one priority weight must be above 0",
    ),
    (
        "decay_rate: 2\n",
        "p.yaml:1:13: decay_rate: must be less than or equal to 1",
    ),
    # trust levels: a closed set
    (
        "trust_levels: {network_access: extreme}\n",
        "p.yaml:1:32: trust_levels.network_access: must be one of: 'none', 'low', 'medium' "
        "or 'high'",
    ),
    (
        "access_controls: {level: total}\n",
        "p.yaml:1:26: access_controls.level: must be one of: 'none', 'low', 'medium' or 'high'",
    ),
    # environment variable names
    (
        "environment_variables: {1BAD: x}\n",
        "p.yaml:1:25: environment_variables.1BAD: '1BAD' is not a valid environment variable "
        "name (letters, digits and _, not starting with a digit)",
    ),
    (
        "environment_variables: {A-B: x}\n",
        "p.yaml:1:25: environment_variables.A-B: 'A-B' is not a valid environment variable "
        "name (letters, digits and _, not starting with a digit)",
    ),
    (
        "environment_variables: {GOOD: [1]}\n",
        "p.yaml:1:31: environment_variables.GOOD: must be a valid string",
    ),
    # absolute paths
    (
        "access_controls: {filesystem: [{path: srv/data}]}\n",
        "p.yaml:1:39: access_controls.filesystem[0].path: 'srv/data' is not an absolute path "
        "(start with /, ~/ or {home}/)",
    ),
    (
        "access_controls: {filesystem: [{path: /srv/../etc}]}\n",
        "p.yaml:1:39: access_controls.filesystem[0].path: '/srv/../etc': '..' is not allowed "
        "in a path",
    ),
    # URLs
    (
        "external_data_sources: [{url: ftp://feeds.example.com/a}]\n",
        "p.yaml:1:31: external_data_sources[0].url: 'ftp://feeds.example.com/a' is not an "
        "http(s) URL",
    ),
    (
        "external_data_sources: [{url: feeds.example.com}]\n",
        "p.yaml:1:31: external_data_sources[0].url: 'feeds.example.com' is not an http(s) URL",
    ),
    (
        "external_data_sources: [{url: 'https://a.example.com/', every: 5s}]\n",
        "p.yaml:1:64: external_data_sources[0].every: poll at most every 10s",
    ),
    # names
    (
        "name: -bad\n",
        "p.yaml:1:7: name: '-bad' is not a valid persona name: 1-63 letters, digits, '.', '_' "
        "or '-', starting with a letter or digit",
    ),
    (
        "labels: {9x: y}\n",
        "p.yaml:1:10: labels.9x: '9x' is not a valid name: letters, digits, '_', '.', '-'",
    ),
    (
        "restricted_commands: [rm -rf]\n",
        "p.yaml:1:23: restricted_commands[0]: 'rm -rf' is not a command name: a bare name such "
        "as 'git' or a pattern such as 'mkfs*', without '/', spaces or quotes",
    ),
    (
        "behavioral_settings: {logging_level: VERBOSE}\n",
        "p.yaml:1:38: behavioral_settings.logging_level: must be one of: 'debug', 'info', "
        "'warning', 'error' or 'critical'",
    ),
    (
        "resource_requirements: {memory: 4}\n",
        "p.yaml:1:33: resource_requirements.memory: 4 needs a unit: write e.g. 4MiB or 4GiB",
    ),
    (
        "resource_requirements: {priority: 5000}\n",
        "p.yaml:1:35: resource_requirements.priority: must be less than or equal to 1000",
    ),
]


@pytest.mark.parametrize(("text", "message"), IN_DOCUMENT)
def test_value_errors_in_a_document(text: str, message: str) -> None:
    assert problem(text) == message


def test_weights_need_not_sum_to_one() -> None:
    persona = doc("priority_metrics: {performance: 0.9, security: 0.9, cost: 0}\n").persona
    assert persona.priority_metrics == {"performance": 0.9, "security": 0.9, "cost": 0.0}


@pytest.mark.parametrize("level", ["none", "low", "medium", "high", "HIGH", "Medium"])
def test_trust_levels_accepted(level: str) -> None:
    persona = doc(f"trust_levels: {{network_access: {level}}}\n").persona
    assert persona.trust_levels == {"network_access": level.lower()}


@pytest.mark.parametrize(
    ("path", "canonical"),
    [
        ("/etc/app.json", "/etc/app.json"),
        ("~/.config/app.json", "{home}/.config/app.json"),
        ("{home}/.config/app.json", "{home}/.config/app.json"),
        ("/home/{user}/app.json", "/home/{user}/app.json"),
    ],
)
def test_absolute_path_spellings(path: str, canonical: str) -> None:
    persona = doc(f"access_controls: {{filesystem: [{{path: '{path}'}}]}}\n").persona
    assert persona.access_controls.filesystem[0].path == canonical


@pytest.mark.parametrize(
    ("value", "stored"), [("8080", "8080"), (8080, "8080"), (True, "true"), (1.5, "1.5")]
)
def test_environment_values_become_strings(value: Any, stored: str) -> None:
    import json

    persona = doc(json.dumps({"environment_variables": {"PORT": value}}), "p.json").persona
    assert persona.environment_variables == {"PORT": stored}
