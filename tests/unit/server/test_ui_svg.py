"""The dashboard's SVG plots: well-formed, scaled to the data, labels escaped."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from mien.server.ui.svg import Series, bar_chart, line_chart, progress_bar

NS = "{http://www.w3.org/2000/svg}"


def _parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))  # raises if not well-formed


def test_bars_scale_to_the_longest_and_escape_labels() -> None:
    svg = bar_chart([("<script>x</script>", 2), ("b", 4), ("c", 0)], title="t & u")
    root = _parse(svg)
    assert root.find(f"{NS}title").text == "t & u"  # type: ignore[union-attr]
    widths = [float(r.get("width", "0")) for r in root.iter(f"{NS}rect")]
    assert widths[1] == 2 * widths[0] and widths[2] == 0.0
    assert "<script>" not in str(svg) and "&lt;script&gt;x&lt;/script&gt;" in str(svg)
    texts = [t.text for t in root.iter(f"{NS}text")]
    assert "<script>x</script>" in texts and "4" in texts


def test_empty_and_all_zero_bars() -> None:
    assert "no data" in str(bar_chart([], title="nothing"))
    root = _parse(bar_chart([("a", 0), ("b", 0)], title="zeros"))
    assert all(float(r.get("width", "1")) == 0.0 for r in root.iter(f"{NS}rect"))


def test_line_chart_maps_points_into_the_plot() -> None:
    svg = line_chart(
        [Series("cpu <b>", [(0, 0), (10, 50), (20, 100)]), Series("idle", [(0, 100)])],
        title="load",
        width=300,
        height=200,
        unit="%",
    )
    root = _parse(svg)
    lines = list(root.iter(f"{NS}polyline"))
    assert len(lines) == 2
    points = [tuple(map(float, p.split(","))) for p in lines[0].get("points", "").split()]
    xs = [x for x, _y in points]
    ys = [y for _x, y in points]
    assert xs == sorted(xs) and xs[0] == 48 and xs[-1] == 300 - 12
    assert ys[0] > ys[1] > ys[2]  # higher values are drawn higher up
    assert "cpu &lt;b&gt;" in str(svg) and "100%" in str(svg)


def test_line_chart_without_points_and_with_one_point() -> None:
    assert "no data" in str(line_chart([], title="x"))
    assert "no data" in str(line_chart([Series("a", [])], title="x"))
    one = _parse(line_chart([Series("a", [(5, 3)])], title="x"))
    assert len(list(one.iter(f"{NS}polyline"))) == 1  # no division by zero


def test_negative_values_extend_the_axis_down() -> None:
    svg = str(line_chart([Series("t", [(0, -5), (1, 5)])], title="temp"))
    assert re.search(r">-5<", svg)


def test_progress_bar_parts_add_up() -> None:
    root = _parse(progress_bar([("applied", 3), ("failed", 1), ("waiting", 0)], 8, title="r"))
    rects = list(root.iter(f"{NS}rect"))
    track = float(rects[0].get("width", "0"))
    filled = [float(r.get("width", "0")) for r in rects[1:] if r.get("height") == "20"]
    assert sum(filled) == track / 2  # 4 of 8
    assert "applied 3" in str(ET.tostring(root, encoding="unicode"))
    empty = _parse(progress_bar([("applied", 0)], 0, title="none"))
    assert len([r for r in empty.iter(f"{NS}rect") if r.get("height") == "20"]) == 1
