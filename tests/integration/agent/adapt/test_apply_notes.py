"""What ``mien apply`` says of the adaptive fields: pending on the agent's adaptation loop
(reason ``agent``), never "stored, not applied" and never "applied"."""

from __future__ import annotations

from pathlib import Path

from tests.support import run_mien

PERSONA = """\
name: adaptive
learning_domains: [metrics]
trust_levels: {file_system_modification: low}
priority_metrics: {performance: 1.0}
adaptation_rules:
  - name: hot
    when: metrics.cpu_percent > 90.0
    then: [{action: notify, message: hot}]
resource_requirements: {cpu: 2}
"""


def test_adaptive_fields_are_pending_on_the_agent_and_resources_stay_stored(
    machine: Path, tmp_path: Path
) -> None:
    persona = tmp_path / "adaptive.yaml"
    persona.write_text(PERSONA)
    done = run_mien("apply", persona, "--root", machine, "--user", "alice", "--yes")
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    for field in ("learning_domains", "trust_levels", "priority_metrics", "adaptation_rules"):
        line = next(x for x in out.splitlines() if x.strip().startswith(f"{field}:"))
        assert "applied by the agent's adaptation loop" in line and "(agent)" in line, line
    assert "not applied" not in out.split("stored, not applied:")[0]
    stored = out.split("stored, not applied:")[1]
    assert "resource_requirements" in stored and "adaptation_rules" not in stored
    assert "pending:" in out
