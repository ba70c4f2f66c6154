"""What README, the docs and ``mien --help`` claim, held to what the code does.

The fields that are stored and not acted on are the ones no installed handler claims
(:func:`mien.agent.handlers.settings_store.stored_not_acted`); every place that lists them must list
exactly those. Words that pointed at things not in the repository (a design document,
internal document numbers) must not come back."""

from __future__ import annotations

import re

from mien.agent.handlers import settings_store
from mien.cli import main
from tests.support import REPO, run_mien

MARKER = "**Stored, not acted on yet**"


def listed(text: str, where: str) -> list[str]:
    assert MARKER in text, f"{where} does not say which fields are stored, not acted on"
    sentence = text[text.index(MARKER) + len(MARKER) :]
    sentence = re.split(r";|\.\s", sentence, maxsplit=1)[0]
    return re.findall(r"`([a-z_.]+)`", sentence)


def test_readme_docs_and_help_name_exactly_the_stored_fields() -> None:
    expected = list(settings_store.stored_not_acted())
    assert "resource_requirements" in expected and "environment_variables" not in expected
    # The adaptive fields are the adaptation loop's (pending on the agent), not stored.
    assert "adaptation_rules" not in expected and "trust_levels" not in expected
    for name in ("README.md", "docs/persona-language.md"):
        assert listed((REPO / name).read_text(), name) == expected, name
    assert main.STORED_NOT_ACTED.split(", ") == expected
    shown = run_mien("--help", env={"COLUMNS": "200"})
    assert shown.returncode == 0
    flat = " ".join(shown.stdout.replace("│", " ").split())
    assert f"Stored, not acted on yet: {', '.join(expected)}." in flat


def test_no_claim_points_at_what_is_not_there() -> None:
    paths = [REPO / "README.md"]
    for folder in ("src", "docs", "examples", "scripts"):
        paths += [
            p
            for p in (REPO / folder).rglob("*")
            if p.is_file() and p.suffix in {".py", ".md", ".yaml", ".yml", ".json", ".toml"}
        ]
    found = []
    for path in paths:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if re.search(r"\bseeds?\b|DESIGN\.md", line, re.I):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert found == []
    language = (REPO / "docs/persona-language.md").read_text()
    assert "Every action is checked against" not in language
