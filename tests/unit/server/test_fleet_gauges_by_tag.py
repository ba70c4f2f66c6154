"""The fleet gauges by tag: averages of the newest values grouped by a tag's value, with a
bounded label set however many values the tag has."""

from __future__ import annotations

from mien.server.telemetry import OTHER, by_tag


def test_averages_by_each_key() -> None:
    tags = {"a": {"role": "web", "zone": "eu"}, "b": {"role": "web"}, "c": {"role": "db"}}
    rows = [("a", "cpu_percent", 10.0), ("b", "cpu_percent", 30.0), ("c", "cpu_percent", 5.0)]
    got = by_tag(rows, tags, ["role", "zone"])
    assert got == [
        ("role", "db", "cpu_percent", 5.0, 1),
        ("role", "web", "cpu_percent", 20.0, 2),
        ("zone", "eu", "cpu_percent", 10.0, 1),
    ]


def test_an_instance_without_the_tag_or_unknown_is_left_out() -> None:
    rows = [("a", "cpu_percent", 10.0), ("gone", "cpu_percent", 99.0)]
    assert by_tag(rows, {"a": {}}, ["role"]) == []


def test_a_tag_with_a_value_per_machine_stays_bounded() -> None:
    tags = {f"vm-{i}": {"host": f"h{i}"} for i in range(200)}
    tags.update({f"big-{i}": {"host": "shared"} for i in range(5)})
    rows = [(iid, "load_1m", 1.0) for iid in tags]
    got = by_tag(rows, tags, ["host"], limit=10)
    values = {value for _, value, _, _, _ in got}
    assert len(values) == 11 and OTHER in values and "shared" in values
    assert sum(count for *_, count in got) == len(tags)
