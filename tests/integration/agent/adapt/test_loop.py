"""The adaptation loop over real rules, executors, engine and state: settings overlaid and
reverted, trust refusals audited, cooldowns, retries with backoff, persona switches and
what survives a restart."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

from mien.agent.adapt.ledger import APPLIED, FAILED, RETRY, REVERTED, Ledger
from mien.agent.engine import Engine
from mien.agent.state import State
from tests.integration.agent.adapt.conftest import Loop
from tests.support import run_mien

TRUST = """\
trust_levels:
  file_system_modification: high
  network_access: high
  process_control: high
  resource_scaling: high
  persona_change: low
"""

SETTING = (
    """\
name: calm
environment_variables: {MIEN_MODE: calm}
learning_domains: [metrics]
"""
    + TRUST
    + """\
adaptation_rules:
  - name: busy
    when: metrics.cpu_percent > 40.0
    for: 3s
    clear_for: 2s
    then: [{action: set_setting, key: environment_variables.MIEN_MODE, value: busy}]
"""
)


def env(root: Path) -> str:
    return (root / "etc/environment.d/50-mien.conf").read_text()


def changes(root: Path, *statuses: str) -> list[object]:
    with State(root) as state:
        return Ledger(state).changes(statuses or (APPLIED, RETRY))


def test_a_setting_is_overlaid_while_the_rule_fires_and_reverted_when_it_clears(
    loop: Callable[[str], Loop],
) -> None:
    run = loop(SETTING)
    run.run_for(2, cpu_percent=90.0)
    assert [e["to"] for e in run.events() if e["event"].startswith("rule.")] == ["pending"]
    assert 'MIEN_MODE="calm"' in env(run.root)
    run.run_for(3)
    assert 'MIEN_MODE="busy"' in env(run.root)
    applied = run.events("action.applied")
    assert applied and applied[0]["rule"] == "busy" and applied[0]["action"] == "set_setting"
    history = Engine(run.root).history()[0][0]
    assert history.kind == "automated"
    assert history.note == "rule busy: set environment_variables.MIEN_MODE"
    run.run_for(5, cpu_percent=5.0)
    assert 'MIEN_MODE="calm"' in env(run.root)
    kinds = [e["event"] for e in run.events()]
    assert kinds.index("action.applied") < kinds.index("action.reverted")
    assert [e["to"] for e in run.events() if e["event"].startswith("rule.")][-1] == "inactive"


def test_an_action_beyond_trust_is_refused_audited_and_not_run(
    loop: Callable[[str], Loop], tmp_path: Path
) -> None:
    (tmp_path / "other.yaml").write_text("name: other\n")
    run = loop(
        SETTING.replace("name: busy", "name: flee").replace(
            "then: [{action: set_setting, key: environment_variables.MIEN_MODE, value: busy}]",
            "then: [{action: switch_persona, persona: other}]",
        )
    )
    run.run_for(6, cpu_percent=90.0)
    refused = run.events("action.refused")
    assert len(refused) == 1 and refused[0]["rule"] == "flee"
    assert refused[0]["action"] == "switch_persona" and refused[0]["actor"] == "agent:adapt"
    assert any(line["event"] == "adapt.action.refused" for line in run.audit_lines())
    with State(run.root) as state:
        assert state.get_meta("active") == "calm"
    shown = run_mien("top", "--root", run.root, "--once")
    assert shown.returncode == 0
    assert "refused" in shown.stdout and "switch_persona" in shown.stdout


def test_a_cooldown_stops_a_re_fire(loop: Callable[[str], Loop]) -> None:
    run = loop(
        SETTING.replace("    clear_for: 2s\n", "    clear_for: 1s\n    cooldown: 1h\n").replace(
            "then: [{action: set_setting, key: environment_variables.MIEN_MODE, value: busy}]",
            "then: [{action: notify, message: hot}]",
        )
    )
    run.run_for(5, cpu_percent=90.0)
    assert len(run.events("action.done")) == 1
    run.run_for(4, cpu_percent=5.0)
    run.run_for(8, cpu_percent=90.0)
    assert len(run.events("action.done")) == 1
    assert any("notify (busy): hot" in line for line in run.lines)


def test_a_failing_action_is_retried_with_backoff_not_in_a_tight_loop(
    loop: Callable[[str], Loop],
) -> None:
    run = loop(
        SETTING.replace(
            "then: [{action: set_setting, key: environment_variables.MIEN_MODE, value: busy}]",
            "then: [{action: run, command: \"sh -c 'exit 3'\"}]",
        )
    )
    run.run_for(4 + 40, cpu_percent=90.0)
    failed = run.events("action.failed")
    # 2 s, 4 s, 8 s, 16 s apart (±20 %): five attempts in 40 s, not forty.
    assert 4 <= len(failed) <= 6
    waits = [e["retry_in"] for e in failed]
    assert all(later > earlier for earlier, later in itertools.pairwise(waits))
    assert "exited 3" in failed[0]["error"]
    run.run_for(6, cpu_percent=5.0)
    assert run.events("action.abandoned")
    assert not changes(run.root, RETRY)


def test_pending_time_survives_a_new_agent(loop: Callable[[str], Loop]) -> None:
    run = loop(SETTING)
    run.run_for(2, cpu_percent=90.0)
    pending = run.events("rule.pending")[0]
    run.adaptation.close()
    from mien.agent.adapt.loop import Adaptation

    fresh = Adaptation(
        run.root,
        run.adaptation.runner.engine,
        interval=1.0,
        log=run.lines.append,
        telemetry=run.adaptation.make_telemetry,
        sources=run.adaptation.make_sources,
        baselines=run.adaptation.baselines_module,
        clock=lambda: run.now,
    )
    run.adaptation = fresh
    run.run_for(2)
    assert len(run.events("rule.pending")) == 1
    firing = run.events("rule.firing")
    assert firing and firing[0]["at"] - pending["at"] <= 3.5


def test_a_persona_switch_ends_the_old_rules_changes_and_a_rollback_finds_them(
    loop: Callable[[str], Loop], tmp_path: Path
) -> None:
    run = loop(SETTING)
    run.run_for(5, cpu_percent=90.0)
    assert 'MIEN_MODE="busy"' in env(run.root)
    (tmp_path / "other.yaml").write_text("name: other\nenvironment_variables: {MIEN_MODE: other}\n")
    Engine(run.root, personas=[tmp_path]).apply("other")
    run.tick()
    assert list(changes(run.root, REVERTED))
    assert not changes(run.root, APPLIED)
    assert any(e["event"] == "persona.loaded" and e["persona"] == "other" for e in run.events())
    assert 'MIEN_MODE="other"' in env(run.root)
    Engine(run.root).rollback()  # to the automated state: calm with the rule's setting
    run.tick(cpu_percent=90.0)
    with State(run.root) as state:
        saved = Ledger(state).rule_states("calm")
    assert '"phase":"firing"' in saved["busy"]
    assert 'MIEN_MODE="busy"' in env(run.root) and changes(run.root, APPLIED)
    run.run_for(5, cpu_percent=5.0)
    assert 'MIEN_MODE="calm"' in env(run.root)
    assert not changes(run.root, APPLIED) and not changes(run.root, FAILED)


def test_applying_the_persona_again_keeps_a_setting_only_while_its_rule_fires(
    loop: Callable[[str], Loop], tmp_path: Path
) -> None:
    run = loop(SETTING)
    run.run_for(5, cpu_percent=90.0)
    Engine(run.root).apply(tmp_path / "persona.yaml")
    assert 'MIEN_MODE="calm"' in env(run.root)
    run.tick()
    assert 'MIEN_MODE="busy"' in env(run.root)
    run.run_for(5, cpu_percent=5.0)
    assert 'MIEN_MODE="calm"' in env(run.root)
    assert not changes(run.root, APPLIED)


def test_a_change_lives_its_lifetime_while_the_rule_fires_and_no_longer(
    loop: Callable[[str], Loop],
) -> None:
    run = loop(
        SETTING.replace(
            "learning_domains: [metrics]\n", "learning_domains: [metrics]\ndecay_rate: 1.0\n"
        )
    )
    run.run_for(5, cpu_percent=90.0)
    (first,) = changes(run.root, APPLIED)
    assert first.until is not None and 299 <= first.until - first.applied_at <= 301  # 5 min
    run.tick(301.0)
    (kept,) = changes(run.root, APPLIED)
    assert kept.until is not None and kept.until > first.until
    run.adaptation.states.pop("busy")  # the rule no longer fires (its state is gone)
    run.tick(301.0)
    assert not changes(run.root, APPLIED)
    assert run.events("action.reverted")[-1]["why"] == "lifetime over"
    assert 'MIEN_MODE="calm"' in env(run.root)


def test_the_rule_serving_the_heavier_goal_wins_and_the_other_is_suppressed(
    loop: Callable[[str], Loop],
) -> None:
    run = loop(
        """\
name: calm
environment_variables: {MIEN_MODE: calm}
learning_domains: [metrics]
priority_metrics: {performance: 0.8, cost: 0.2}
"""
        + TRUST
        + """\
adaptation_rules:
  - name: cheap
    serves: cost
    when: metrics.cpu_percent > 40.0
    then: [{action: set_setting, key: environment_variables.MIEN_MODE, value: cheap}]
  - name: fast
    serves: performance
    when: metrics.cpu_percent > 40.0
    then: [{action: set_setting, key: environment_variables.MIEN_MODE, value: fast}]
"""
    )
    run.run_for(2, cpu_percent=90.0)
    suppressed = run.events("action.suppressed")
    assert [(e["rule"], e["suppressed_by"]) for e in suppressed] == [("cheap", "fast")]
    assert [e["rule"] for e in run.events("action.applied")] == ["fast"]
    assert 'MIEN_MODE="fast"' in env(run.root)
