"""The terminal sparkline of ``mien instance metrics``."""

from __future__ import annotations

from mien.cli.fleet.telemetry import BLOCKS, number, sparkline


def test_lowest_and_highest_get_the_end_blocks() -> None:
    assert sparkline([0, 5, 10]) == "▁▅█"
    assert sparkline([3, 3, 3]) == "▄▄▄"
    assert sparkline([]) == ""
    assert sparkline([float("nan"), 1.0, 2.0]) == "▁█"


def test_a_long_series_is_averaged_into_the_width() -> None:
    line = sparkline([float(i % 2) for i in range(1000)] + [10.0] * 1000, width=20)
    assert len(line) == 20
    assert set(line[:10]) == {BLOCKS[0]} and set(line[10:]) == {BLOCKS[-1]}


def test_numbers_are_short() -> None:
    assert number(None) == "-"
    assert number(42.0) == "42"
    assert number(3.14159) == "3.142"
