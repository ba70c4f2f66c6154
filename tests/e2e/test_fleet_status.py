"""Honest fleet status end to end: a real agent applies a persona one of whose settings
cannot take effect on its machine (nothing there reads it: stored, not applied), and the
server, the API and ``mien instance list|show`` say "partly in effect", not "in sync"; the
agent's rule states, recent actions and the drift of a managed file edited behind mien's
back reach the server without a new apply."""

from __future__ import annotations

from pathlib import Path

from mien.client import Client
from tests.e2e.test_fleet import AgentProcess, admin, enroll, server, until
from tests.support import install_zsh, make_machine, run_mien

__all__ = ["admin", "server"]  # the fixtures, used by name

PERSONA = """\
name: partly
environment_variables: {MIEN_MODE: calm}
application_settings: {report_format: wide}
learning_domains: [metrics]
adaptation_rules:
  - name: always
    when: metrics.cpu_percent >= 0
    for: 1s
    then: [{action: notify, message: hello}]
  - name: never
    when: metrics.cpu_percent > 1000
    then: [{action: notify, message: never}]
"""


def test_a_persona_partly_in_effect_says_so_everywhere(
    tmp_path: Path, server: object, admin: Client
) -> None:
    root = install_zsh(make_machine(tmp_path / "m"))
    instance = enroll(server, admin, root)  # type: ignore[arg-type]
    persona = tmp_path / "partly.yaml"
    persona.write_text(PERSONA)
    admin.create_persona(persona)
    agent = AgentProcess(root, tmp_path / "agent.log", "--interval", "1")
    try:
        applied = admin.wait_activation(admin.activate(instance, "partly").id, timeout=60)
        assert applied.status == "applied", applied.error
        inst = until(lambda: admin.get_instance(instance), what="the instance")
        effect = inst.effect
        assert inst.in_sync and effect.state == "partial", effect
        assert effect.stored >= 1 and effect.applied >= 1, effect
        assert effect.summary.startswith("partly in effect: "), effect.summary
        stored = [s for s in inst.applied.settings if s.status == "stored"]
        assert "application_settings.report_format" in {s.setting for s in stored}

        env = {"MIEN_SERVER": server.url, "MIEN_TOKEN": server.admin_token}  # type: ignore[attr-defined]
        listed = run_mien("instance", "list", env=env)
        assert listed.returncode == 0, listed.stderr
        row = next(line for line in listed.stdout.splitlines() if instance in line)
        assert "partly in effect" in row and "in sync" not in row, row

        # The rule that always holds fires and acts; the other stays inactive; a managed
        # file edited behind mien's back is drift. All reach the server between applies.
        settings = root / "etc/mien/settings.json"
        settings.write_text(settings.read_text() + "\n")

        def reported() -> object:
            machine = admin.instance_status(instance).machine
            if machine is None:
                return None
            phases = {r.rule: r.phase for r in machine.rules}
            if phases.get("always") != "firing" or not machine.actions:
                return None
            if "/etc/mien/settings.json" not in machine.drift:
                return None
            return machine

        machine = until(reported, timeout=90, what="rule states, actions and drift reported")
        assert {r.rule: r.phase for r in machine.rules}["never"] == "inactive"
        assert machine.actions[0].rule == "always" and machine.actions[0].action == "notify"
        shown = run_mien("instance", "show", instance, env=env)
        assert shown.returncode == 0, shown.stderr
        text = " ".join(shown.stdout.split())
        assert (
            "NOT in sync: the agent applied the desired content, but it is partly in effect" in text
        )
        assert "/etc/mien/settings.json" in text and "always" in text and "firing" in text
    finally:
        assert agent.stop() == 0, agent.log()
