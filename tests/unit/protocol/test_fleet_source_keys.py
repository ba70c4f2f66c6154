"""Fleet-wide sources: the ``fleet`` field of a persona's source, and how sources named by
several personas become one the server polls (same URL and parsing → one key)."""

from __future__ import annotations

from mien.protocol.sources import FleetSource, fleet_sources, merge, source_key
from mien.spec.canonical import canonical
from mien.spec.schema import json_schema
from tests.unit.spec.spec_helpers import doc, problem

URL = "https://feeds.example.com/blocklist.txt"


def sources(text: str) -> list[FleetSource]:
    return fleet_sources(doc(f"external_data_sources:\n{text}").persona)


def test_the_key_is_the_url_and_the_parsing_only() -> None:
    key = source_key(URL, "lines")
    assert key == source_key(URL, "lines") and len(key) == 32
    assert key != source_key(URL, "json")
    assert key != source_key(URL + "?x=1", "lines")
    assert key != source_key(URL + "/", "lines")
    # The same source under two names, intervals and timeouts is one key.
    a = sources(f"  - {{name: a, url: '{URL}', every: 1m, fleet: true}}\n")
    b = sources(f"  - {{name: b, url: '{URL}', every: 10s, timeout: 30s, fleet: true}}\n")
    assert a[0].key == b[0].key == key


def test_only_sources_marked_fleet_are_fleet_wide() -> None:
    found = sources(
        f"  - {{name: mine, url: '{URL}'}}\n"
        f"  - {{name: ours, url: '{URL}', parse: json, fleet: true}}\n"
        f"  - {{name: off, url: '{URL}', parse: text, fleet: false}}\n"
    )
    assert [(s.url, s.parse, s.every, s.timeout) for s in found] == [(URL, "json", 300.0, 10.0)]


def test_merge_polls_at_the_shortest_interval_with_the_longest_timeout() -> None:
    key = source_key(URL, "lines")
    merged = merge(
        [
            FleetSource(key, URL, "lines", 60.0, 5.0),
            FleetSource(key, URL, "lines", 10.0, 2.0),
            FleetSource(key, URL, "lines", 30.0, 20.0),
            FleetSource(source_key(URL, "json"), URL, "json", 300.0, 10.0),
        ]
    )
    assert merged[key] == FleetSource(key, URL, "lines", 10.0, 20.0)
    assert len(merged) == 2 and merge([]) == {}


def test_fleet_is_a_boolean_and_off_by_default() -> None:
    assert problem(f"external_data_sources: [{{url: '{URL}', fleet: maybe}}]\n") == (
        "p.yaml:1:81: external_data_sources[0].fleet: must be a valid boolean"
    )
    assert problem(f"external_data_sources: [{{url: '{URL}', fleet: 1}}]\n").endswith(
        "external_data_sources[0].fleet: must be a valid boolean"
    )
    # Unmarked, a persona's canonical form (and so its hash) is what it was before.
    plain = canonical(doc(f"external_data_sources: [{{url: '{URL}', fleet: false}}]\n").persona)
    assert "fleet" not in plain["external_data_sources"][0]
    marked = canonical(doc(f"external_data_sources: [{{url: '{URL}', fleet: true}}]\n").persona)
    assert marked["external_data_sources"][0]["fleet"] is True
    schema = json_schema()["$defs"]["DataSource"]["properties"]["fleet"]
    assert schema["type"] == "boolean" and schema["default"] is False
