"""Through the real ``mien apply`` on a temp root: a persona whose theme or INI key holds a
line break is refused with a problem line naming the field, and nothing on the machine
changes (before the fix the break added a section to dconf's and the INI file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import make_machine, run_mien, snapshot, tree_diff

THEME = "Adwaita\n[org/gnome/desktop/screensaver]\nlock-enabled=false"
PERSONAS = {
    "theme": ({"os_settings": {"theme": THEME}}, "os_settings.theme"),
    "ini-key": (
        {
            "application_configuration": {
                "app": {
                    "path": "/etc/app.ini",
                    "values": {"main": {"k\n[evil]\nx": "1"}},
                }
            }
        },
        "application_configuration.app.values: main.k\\n[evil]\\nx",
    ),
    "ini-value": (
        {
            "application_configuration": {
                "app": {"path": "/etc/app.ini", "values": {"main": {"k": "1\r[evil]"}}}
            }
        },
        "application_configuration.app: main.k: the value holds a control character U+000D",
    ),
}


@pytest.mark.parametrize("case", sorted(PERSONAS))
def test_line_breaks_are_refused_and_nothing_changes(tmp_path: Path, case: str) -> None:
    root = make_machine(tmp_path / "root")
    (root / "etc/app.ini").write_text("# mine\n[main]\nk = 0\n")
    data, field = PERSONAS[case]
    target = tmp_path / "p.yaml"
    target.write_text(json.dumps({"name": "p", **data}))  # JSON is YAML: exact escapes
    before = snapshot(root)
    result = run_mien("apply", target, "--root", root, "--user", "alice", "--yes")
    assert result.returncode != 0
    assert field in result.stderr
    assert "Traceback" not in result.stderr
    assert tree_diff(before, snapshot(root)) == []
