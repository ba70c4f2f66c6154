"""The arithmetic of fleet telemetry: roll-up buckets and their merging, which store a
query reads at which step, the points of a series, durations."""

from __future__ import annotations

import math

import pytest

from mien.server.telemetry import (
    HOUR,
    MAX_POINTS,
    MINUTE,
    Agg,
    Retention,
    bucket,
    choose,
    parse_duration,
    points,
    rollup,
)

KEEP = Retention(raw=86400, minute=7 * 86400, hour=90 * 86400)
NOW = 1_800_000_000.0


def test_buckets_start_on_whole_steps() -> None:
    assert bucket(125.0, MINUTE) == 120.0
    assert bucket(120.0, MINUTE) == 120.0
    assert bucket(3599.9, HOUR) == 0.0


def test_rollup_counts_sums_and_keeps_the_newest_value() -> None:
    samples = [("cpu", 61.0, 5.0), ("cpu", 119.0, 1.0), ("cpu", 70.0, 9.0), ("mem", 61.0, 2.0)]
    out = rollup(samples, MINUTE)
    cpu = out[("cpu", 60.0)]
    assert (cpu.count, cpu.sum, cpu.min, cpu.max) == (3, 15.0, 1.0, 9.0)
    assert (cpu.last, cpu.last_ts) == (1.0, 119.0)  # the newest, not the last sent
    assert cpu.avg == 5.0
    assert out[("mem", 60.0)].count == 1


def test_merging_two_batches_equals_one_rollup_of_both() -> None:
    first = [("cpu", 60.0 + i, float(i)) for i in range(0, 30)]
    second = [("cpu", 60.0 + i, float(i)) for i in range(30, 60)]
    merged = rollup(second, MINUTE)[("cpu", 60.0)]
    merged.add(rollup(first, MINUTE)[("cpu", 60.0)])  # late samples arrive after newer ones
    whole = rollup(first + second, MINUTE)[("cpu", 60.0)]
    assert merged == whole


def test_choose_the_finest_store_that_still_holds_the_range() -> None:
    assert choose(NOW - 600, NOW, 0.0, KEEP) == ("raw", 0.0)
    assert choose(NOW - 120, NOW, None, KEEP) == ("raw", 0.0)  # short: every sample
    assert choose(NOW - 3600, NOW, None, KEEP) == ("raw", 12.0)
    assert choose(NOW - 3600, NOW, 60.0, KEEP) == ("1m", 60.0)
    assert choose(NOW - 3600, NOW, 90.0, KEEP) == ("1m", 120.0)  # whole minutes
    assert choose(NOW - 2 * 86400, NOW, 0.0, KEEP) == ("1m", 60.0)  # raw is gone
    assert choose(NOW - 30 * 86400, NOW, None, KEEP) == ("1h", 3 * HOUR)
    assert choose(NOW - 3600, NOW, 7200.0, KEEP) == ("1h", 7200.0)


def test_a_long_range_never_has_more_than_max_points() -> None:
    source, step = choose(NOW - 86000, NOW, 1.0, KEEP)
    assert 86000 / step <= MAX_POINTS
    assert (source, step) == ("raw", 43.0)  # raw still holds it, at a coarser step


def test_points_regroup_by_step_with_weighted_averages() -> None:
    items = [(0.0, Agg(2, 10.0, 4.0, 6.0, 6.0, 50.0)), (60.0, Agg(1, 1.0, 1.0, 1.0, 1.0, 61.0))]
    assert points(items, 120.0) == [[0.0, 11.0 / 3, 1.0, 6.0]]
    assert points(items, 0.0) == [[0.0, 5.0, 4.0, 6.0], [60.0, 1.0, 1.0, 1.0]]


def test_durations() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("15m") == 900
    assert parse_duration("1h") == 3600
    assert parse_duration("2d") == 172800
    for bad in ("", "soon", "-1h", "0", "nanh"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert math.isnan(Agg(0, 0, 0, 0, 0, 0).avg)
