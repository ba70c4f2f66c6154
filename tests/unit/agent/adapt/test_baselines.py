"""Baseline math: time-weighted mean and variance, decay, z-scores, persistence."""

from __future__ import annotations

import json
import math

import pytest

from mien.agent.adapt.baselines import (
    DEFAULT_DECAY_RATE,
    MIN_LIFETIME,
    MIN_SAMPLES,
    Baselines,
    half_life_hours,
    lifetime,
)


def test_half_life_formula() -> None:
    assert half_life_hours(0.5) == pytest.approx(1.0)
    assert half_life_hours(0.05) == pytest.approx(13.513, abs=1e-3)
    assert half_life_hours(0.0) == math.inf
    assert half_life_hours(1.0) == 0.0


def test_lifetime_is_the_half_life_with_a_floor() -> None:
    assert lifetime(0.5) == pytest.approx(3600.0)
    assert lifetime(None) == pytest.approx(half_life_hours(DEFAULT_DECAY_RATE) * 3600)
    assert lifetime(1.0) == MIN_LIFETIME
    assert lifetime(0.0) == math.inf


def test_first_samples_are_a_plain_average() -> None:
    b = Baselines(0.05)
    for i, x in enumerate([10.0, 20.0, 30.0]):
        b.update({"m": x}, 15.0 * i)
    assert b.mean("m") == pytest.approx(20.0)
    assert b.stddev("m") == pytest.approx(math.sqrt(200 / 3))


def test_after_one_half_life_a_step_is_half_learned_whatever_the_intervals() -> None:
    # decay_rate 0.5/h: half-life one hour. Learn 0 for a long time, then see 100.
    for steps in ([15.0] * 240, [1.0, 59.0] * 60, [3600.0]):
        b = Baselines(0.5)
        t = 0.0
        for _ in range(2000):
            t += 15.0
            b.update({"m": 0.0}, t)
        for dt in steps:
            t += dt
            b.update({"m": 100.0}, t)
        assert b.mean("m") == pytest.approx(50.0, abs=1.5), steps


def test_decay_zero_never_forgets() -> None:
    b = Baselines(0.0)
    for i in range(1000):
        b.update({"m": float(i % 2)}, i * 3600.0)
    assert b.mean("m") == pytest.approx(0.5, abs=1e-9)


def test_baseline_and_z_are_from_before_the_sample() -> None:
    b = Baselines(0.05)
    means, z = b.update({"m": 5.0}, 0.0)
    assert means == {} and z == {}
    for i in range(1, MIN_SAMPLES):
        means, z = b.update({"m": 10.0 + (i % 2)}, i * 15.0)
        assert "m" in means and z == {}
    means, z = b.update({"m": 10.5}, MIN_SAMPLES * 15.0)
    assert set(z) == {"m"}
    before = b.mean("m")
    spike, z = b.update({"m": 1000.0}, (MIN_SAMPLES + 1) * 15.0)
    assert spike["m"] == pytest.approx(before)
    assert z["m"] > 10


def test_constant_metric_gets_finite_scores() -> None:
    b = Baselines()
    for i in range(MIN_SAMPLES + 1):
        _, z = b.update({"m": 3.0}, i * 15.0)
    assert z == {"m": 0.0}
    _, z = b.update({"m": 4.0}, 999.0)
    assert math.isfinite(z["m"]) and z["m"] > 0


def test_non_finite_values_are_ignored() -> None:
    b = Baselines()
    b.update({"m": math.nan, "n": math.inf, "o": 1.0}, 0.0)
    assert len(b) == 1


def test_metrics_unseen_for_a_week_are_forgotten() -> None:
    b = Baselines()
    b.update({"old": 1.0}, 0.0)
    b.update({"new": 1.0}, 8 * 86400.0)
    assert b.mean("old") is None and b.mean("new") == 1.0


def test_json_round_trip() -> None:
    b = Baselines(0.2)
    for i in range(30):
        b.update({"a": float(i), "b": 2.0 * i}, i * 15.0)
    again = Baselines.from_json(json.loads(json.dumps(b.to_json())))
    assert again.decay_rate == 0.2
    assert again.to_json() == b.to_json()
    assert again.update({"a": 30.0}, 450.0) == b.update({"a": 30.0}, 450.0)
    assert Baselines.from_json(b.to_json(), decay_rate=0.5).decay_rate == 0.5


def test_json_with_damaged_entries_keeps_the_good_ones() -> None:
    data = {
        "decay_rate": "x",
        "metrics": {"ok": [3, 1.0, 0.5, 10.0], "bad": [1, 2], "neg": [1, 1, -1, 0]},
    }
    b = Baselines.from_json(data)
    assert b.decay_rate == DEFAULT_DECAY_RATE
    assert b.mean("ok") == 1.0 and b.mean("bad") is None and b.mean("neg") is None
    assert len(Baselines.from_json({})) == 0


def test_rejects_a_rate_out_of_range() -> None:
    with pytest.raises(ValueError):
        Baselines(1.5)
