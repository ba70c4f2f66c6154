"""Providers without I/O: the webhook signature a receiver checks, the retry schedule, the
trust gate's verdicts, and the requests made of scale events and personas' sizes."""

from __future__ import annotations

import hashlib
import hmac
from types import SimpleNamespace
from typing import Any

import pytest

from mien.server.providers import gate
from mien.server.providers.backoff import retry_delay
from mien.server.providers.base import ProviderRequest
from mien.server.providers.intake import (
    differs,
    provider_for,
    scale_params,
    scale_requests,
    size_request,
    wanted_size,
)
from mien.server.providers.signing import signature, verify
from mien.server.providers.virt import target
from mien.server.providers.webhook import body_of

KEY = "0123456789abcdef-key"


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"id":"k"}'
    expected = hmac.new(KEY.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature(KEY, 1700000000, body) == "v1=" + expected


@pytest.mark.parametrize(
    ("timestamp", "signed", "body", "now", "why"),
    [
        ("1700000000", None, b"{}", 1700000010, None),
        ("1700000000", None, b"{} ", 1700000010, "X-Mien-Signature does not match the body"),
        ("1700000000", "v1=00", b"{}", 1700000010, "X-Mien-Signature does not match the body"),
        ("1700000000", None, b"{}", 1700000400, "X-Mien-Timestamp is 400 s away from now"),
        ("soon", None, b"{}", 1700000000, "X-Mien-Timestamp 'soon' is not a Unix time"),
    ],
)
def test_a_receiver_verifies_body_signature_and_freshness(
    timestamp: str, signed: str | None, body: bytes, now: float, why: str | None
) -> None:
    good = signature(KEY, 1700000000, b"{}")
    found = verify(KEY, timestamp, signed or good, body, now)
    assert (found if found is None else found.split(" (")[0]) == why


def test_the_wrong_key_does_not_verify() -> None:
    signed = signature("another-key-of-16-chars", 100, b"{}")
    assert verify(KEY, "100", signed, b"{}", 100) is not None


def test_the_webhook_body_carries_the_idempotency_key() -> None:
    request = ProviderRequest("p", "vm-1", "resize", {"cpus": 2}, "why", "key-1")
    assert body_of(request) == (
        b'{"id":"key-1","provider":"p","instance":"vm-1","kind":"resize",'
        b'"params":{"cpus":2},"reason":"why"}'
    )


@pytest.mark.parametrize(
    ("attempt", "rand", "delay"),
    [
        (1, 0.0, 2.5),  # half of base 5
        (1, 1.0, 5.0),
        (2, 0.0, 5.0),
        (3, 1.0, 20.0),
        (8, 1.0, 600.0),  # 640 capped at 600
        (30, 0.0, 300.0),
    ],
)
def test_backoff_doubles_with_equal_jitter_and_a_cap(
    attempt: int, rand: float, delay: float
) -> None:
    assert retry_delay(attempt, 5.0, 600.0, lambda: rand) == delay


TRUST_CASES: list[tuple[dict[str, Any], str | None]] = [
    ({"tags": {"role": "web"}, "trust": {"resource_scaling": "medium"}}, None),
    ({"tags": {"role": "web"}, "trust": {"resource_scaling": "high"}}, None),
    (
        {"tags": {"role": "web"}, "trust": {"resource_scaling": "low"}},
        "persona 'p' needs resource_scaling trust medium, the persona grants low",
    ),
    (
        {"tags": {"role": "web"}, "trust": {}},
        "persona 'p' needs resource_scaling trust medium, the persona grants none",
    ),
    (
        {"tags": {"role": "db"}, "trust": {"resource_scaling": "high"}},
        "provider 'hv' does not serve this instance (its selector {'role': 'web'} does not "
        "match the instance's tags)",
    ),
    (
        {"tags": {"role": "web"}, "trust": {"resource_scaling": "high"}, "persona": None},
        "the instance has no persona, so nothing grants resource_scaling trust",
    ),
]


@pytest.mark.parametrize(("case", "why"), TRUST_CASES)
def test_the_gate_says_why_a_call_is_refused(case: dict[str, Any], why: str | None) -> None:
    found = gate.refusal(
        kind="resize",
        params={"cpus": 2},
        name="hv",
        selector={"role": "web"},
        tags=case["tags"],
        persona=case.get("persona", "p"),
        trust_levels=case["trust"],
        needed="medium",
    )
    assert found == why


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"cpu": 4}, {"cpus": 4}),
        ({"cpu": "500m"}, {"cpus": 1}),
        ({"cpu": "+1"}, {"cpus": "+1"}),
        ({"memory": "4GiB"}, {"memory_mib": 4096}),
        ({"memory": "-1"}, {"memory_mib": "-1024"}),
        ({"cpu": 2, "memory": "512MiB"}, {"cpus": 2, "memory_mib": 512}),
    ],
)
def test_scale_params_become_resize_params(
    params: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert scale_params(params) == expected


def test_unreadable_scale_params_are_an_error() -> None:
    with pytest.raises(ValueError):
        scale_params({})
    with pytest.raises(ValueError):
        scale_params({"memory": "lots"})


def test_only_scale_requests_become_requests_keyed_by_event() -> None:
    events = [
        SimpleNamespace(
            seq=7,
            kind="adapt.action.requested",
            detail={"action": "scale", "params": {"cpu": 8}, "rule": "busy", "persona": "web"},
        ),
        SimpleNamespace(seq=8, kind="adapt.action.done", detail={"action": "scale"}),
        SimpleNamespace(seq=9, kind="adapt.action.requested", detail={"action": "notify"}),
    ]
    (request,) = scale_requests("vm-1", events, "hv")
    assert request.idempotency_key == "scale:vm-1:7"
    assert (request.provider, request.kind, dict(request.params)) == ("hv", "resize", {"cpus": 8})
    assert request.reason == "scale by rule 'busy' of persona 'web'"
    (unserved,) = scale_requests("vm-1", events[:1], None)
    assert unserved.provider == "(none)"


def test_the_first_provider_by_name_whose_selector_matches_serves() -> None:
    providers = [("zz", {}), ("aa", {"role": "db"}), ("bb", {"role": ["web", "api"]})]
    assert provider_for(providers, {"role": "web"}) == "bb"
    assert provider_for(providers, {"role": "db"}) == "aa"
    assert provider_for(providers, {"role": "x"}) == "zz"
    assert provider_for(providers[1:], {"role": "x"}) is None


def test_a_persona_size_is_asked_when_it_differs_once_per_target() -> None:
    wanted = wanted_size({"resource_requirements": {"cpu": "1500m", "memory": "2GiB"}})
    assert wanted == {"cpus": 2, "memory_mib": 2048}
    assert wanted_size({"resource_requirements": {}}) == {}
    assert wanted_size(None) == {}
    assert differs(wanted, {}) is True
    assert differs(wanted, {"cpus": 2, "memory_mib": 2048}) is False
    assert differs(wanted, {"cpus": 2, "memory_mib": 1024}) is True
    request = size_request("vm-1", "hv", "big", 3, wanted)
    assert request.idempotency_key == "persona-size:vm-1:big@3:cpus=2,memory_mib=2048"


@pytest.mark.parametrize(
    ("value", "current", "result"), [(4, 2, 4), ("+1", 2, 3), ("-512", 2048, 1536), ("8", 1, 8)]
)
def test_libvirt_targets_resolve_relative_steps(value: Any, current: int, result: int) -> None:
    assert target(value, current) == result


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"cpus": 2, "memory_mib": "+1024"}, None),
        ({"cpus": "-1"}, None),
        ({}, "a resize names neither cpus nor memory_mib"),
        ({"cpu": "lots"}, "a resize takes cpus and/or memory_mib, not cpu"),
        ({"cpus": 0}, "cpus: 0 is neither a whole number (1 or more) nor a step like '+1'"),
        ({"cpus": True}, "cpus: True is neither a whole number (1 or more) nor a step like '+1'"),
        (
            {"memory_mib": "1GiB"},
            "memory_mib: '1GiB' is neither a whole number (1 or more) nor a step like '+1'",
        ),
    ],
)
def test_a_malformed_resize_is_refused_before_it_is_sent(
    params: dict[str, Any], why: str | None
) -> None:
    assert gate.malformed("resize", params) == why
    assert gate.malformed("call", params) is None


def test_the_fleet_policy_cap_refuses_beyond_it() -> None:
    common: dict[str, Any] = {
        "kind": "resize",
        "params": {"cpus": 2},
        "name": "hv",
        "selector": {},
        "tags": {"env": "prod"},
        "persona": "p",
        "trust_levels": {"resource_scaling": "high"},
        "needed": "medium",
    }
    assert gate.refusal(**common, cap=None) is None
    assert gate.refusal(**common, cap=("medium", "trust[0] (env=prod)")) is None
    assert gate.refusal(**common, cap=("low", "trust[0] (env=prod)")) == (
        "the fleet policy (trust[0] (env=prod)) caps resource_scaling at low, the call needs medium"
    )
