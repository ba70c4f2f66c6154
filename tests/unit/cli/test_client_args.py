"""Parsing the fleet commands' arguments (tags, selectors, durations, times) and the small
pure helpers of their output, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mien.cli.common import CommandFailed, paragraphs
from mien.cli.fleet import args
from mien.cli.fleet import common as cc

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def usage_error(func: object, *a: object) -> str:
    with pytest.raises(CommandFailed) as caught:
        func(*a)  # type: ignore[operator]
    assert caught.value.status == 2
    return str(caught.value)


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([], {}),
        (["role=web"], {"role": "web"}),
        (
            ["role=web", "region=eu-west", "k8s.io/zone=a"],
            {"role": "web", "region": "eu-west", "k8s.io/zone": "a"},
        ),
        (["empty="], {"empty": ""}),
        ([" spaced = yes "], {"spaced": "yes"}),
        (["role=web", "role=web"], {"role": "web"}),
    ],
)
def test_parse_pairs(items: list[str], expected: dict[str, str]) -> None:
    assert args.parse_pairs(items, "--tag") == expected


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["role"], "--tag 'role': write KEY=VALUE"),
        (["=web"], "--tag '=web': write KEY=VALUE"),
        (["-role=web"], "a tag key is 1-63 letters"),
        (["role=a b"], "a tag value is up to 128"),
        (["role=a,b"], "no spaces or commas"),
        (["role=web", "role=db"], "--tag role: given twice ('web' and 'db')"),
    ],
)
def test_parse_pairs_refuses(items: list[str], message: str) -> None:
    assert message in usage_error(args.parse_pairs, items, "--tag")


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["role=web"], {"role": "web"}),
        (["role=web,db"], {"role": ["web", "db"]}),
        (["role=*", "env=prod"], {"role": "*", "env": "prod"}),
        (["role = web , db "], {"role": ["web", "db"]}),
    ],
)
def test_parse_selector(items: list[str], expected: dict[str, object]) -> None:
    assert args.parse_selector(items) == expected


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["role"], "write KEY=VALUE, KEY=V1,V2 or KEY=*"),
        (["role=a", "role=b"], "given twice; list several values as role=V1,V2"),
        (["role=a,,b"], "an empty value in the list"),
        (["role=we b"], "a tag value"),
        (["ro le=*"], "a tag key"),
    ],
)
def test_parse_selector_refuses(items: list[str], message: str) -> None:
    assert message in usage_error(args.parse_selector, items)


def test_parse_tag_changes() -> None:
    assert args.parse_tag_changes(["a=1"], ["b"]) == {"a": "1", "b": None}
    assert "both set and removed" in usage_error(args.parse_tag_changes, ["a=1"], ["a"])
    assert "give KEY=VALUE" in usage_error(args.parse_tag_changes, [], [])


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1.5s", 1.5), ("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400), ("90d", 7776000),
     ("1w", 604800), ("1h30m", 5400), ("1m 30s", 90), ("250ms", 0.25), ("2H", 7200),
     ("5 minutes", 300), ("1 hour and 30 minutes", 5400)],
)  # fmt: skip
def test_parse_duration(text: str, seconds: float) -> None:
    """The persona language's syntax, so a duration reads the same in a persona and on
    the command line."""
    assert args.parse_duration(text, "--timeout") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["soon", "-5m", "0s", "5x", "5 fortnights", ""])
def test_parse_duration_refuses(text: str) -> None:
    assert "--timeout" in usage_error(args.parse_duration, text, "--timeout")


@pytest.mark.parametrize("text", ["90", " 90 ", "1.5", "0"])
def test_parse_duration_wants_a_unit(text: str) -> None:
    message = usage_error(args.parse_duration, text, "--expires")
    assert f"--expires {text!r}: give a unit" in message
    assert f"{text.strip()}d" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", NOW - timedelta(hours=2)),
        ("30m", NOW - timedelta(minutes=30)),
        ("2026-02-01T10:00:00Z", datetime(2026, 2, 1, 10, tzinfo=UTC)),
        ("2026-02-01T10:00:00+02:00", datetime(2026, 2, 1, 8, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    assert args.parse_time(text, "--since", NOW) == expected


def test_parse_time_without_a_zone_is_local() -> None:
    when = args.parse_time("2026-02-01", "--since", NOW)
    assert when.tzinfo is not None
    assert when.replace(tzinfo=None) == datetime(2026, 2, 1)
    assert "--since 'last tuesday'" in usage_error(args.parse_time, "last tuesday", "--since", NOW)


@pytest.mark.parametrize(
    ("name", "ok"),
    [("uptime", True), ("mkfs.ext4", True), ("apt-get", True), ("/bin/ls", False),
     ("ls -la", False), ("$(id)", False), ("", False)],
)  # fmt: skip
def test_command_names(name: str, ok: bool) -> None:
    assert bool(args.COMMAND_NAME.match(name)) is ok


# --- output helpers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "text"),
    [(None, "never"), (-5, "just now"), (0, "0s ago"), (59, "59s ago"), (61, "1m ago"),
     (7200, "2h ago"), (3 * 86400, "3d ago")],
)  # fmt: skip
def test_ago(delta: int | None, text: str) -> None:
    when = None if delta is None else NOW - timedelta(seconds=delta)
    assert cc.ago(when, NOW) == text


def test_short_hash_tags_and_selectors() -> None:
    assert cc.short_hash("sha256:852f4fd17b285f8ce7e6") == "sha256:852f4fd17b28"
    assert cc.short_hash(None) == "-"
    assert cc.tags_text({"b": "2", "a": "1"}) == "a=1,b=2" and cc.tags_text({}) == "-"
    assert cc.selector_text({"role": ["web", "db"], "env": "*"}) == "env=* role=web,db"
    assert cc.selector_text({}) == "(every instance)"


def test_help_paragraphs_keep_examples_and_brackets() -> None:
    text = paragraphs("""First line
        continues here.

        Options [KEY] and [bold]markup[/bold].

          mien persona push a.yaml
          mien persona list
        """)
    first, prose, examples = text.split("\n\n")
    assert first == "First line continues here."
    assert prose == "Options \\[KEY] and [bold]markup[/bold]."
    assert examples.splitlines() == [
        "[bold][/bold]  mien persona push a.yaml",
        "[bold][/bold]  mien persona list",
    ]


def test_tags_may_hold_paths_and_addresses() -> None:
    # Tags may hold paths and URLs' pieces (k8s-style keys, values with '/', ':', '@').
    assert args.parse_pairs(["team/owner=ops@example:1"], "--tag") == {
        "team/owner": "ops@example:1"
    }
