"""The environment handler on a temp root: the files it writes are read by the real
programs that read them (dash, bash, systemd's environment.d generator), PATH gets the
router's shims first however often the profile is sourced, and a user's edits come back
as customizations."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mien.agent.handlers.environment import ENVIRONMENT_D, PROFILE, EnvironmentHandler

SHIMS = "/usr/local/lib/mien/shims"
TRICKY = {
    "QUOTES": 'it\'s "quoted"',
    "DOLLAR": "$HOME and ${USER} stay literal",
    "SLASHES": "back\\slash `tick`",
    "SPACES": "  padded  ",
    "PATH": "/opt/tools/bin:$PATH",
}


def source(shell: str, profile: Path, script: str, path: str) -> str:
    out = subprocess.run(
        [shell, "-c", f". {profile}; {script}"],
        env={"PATH": path, "HOME": "/tmp"},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_profile_is_read_by_real_shells(driver, shell: str) -> None:  # type: ignore[no-untyped-def]
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    driver.apply(
        EnvironmentHandler(),
        {
            "environment_variables": TRICKY,
            "os_settings": {"editor": "VSCode"},
            "behavioral_settings": {"logging_level": "debug"},
            "required_applications": [{"name": "black", "manager": "pip"}],
        },
        name="dev",
    )
    profile = driver.path(PROFILE)
    assert profile.stat().st_mode & 0o777 == 0o644
    printed = source(
        shell,
        profile,
        'for v in QUOTES DOLLAR SLASHES SPACES EDITOR VISUAL LOG_LEVEL; do eval "printf \'%s|\\n\' \\"\\$$v\\""; done',
        "/usr/bin:/bin",
    )
    assert printed.splitlines() == [
        f"{TRICKY['QUOTES']}|",
        f"{TRICKY['DOLLAR']}|",
        f"{TRICKY['SLASHES']}|",
        f"{TRICKY['SPACES']}|",
        "code --wait|",
        "code --wait|",
        "DEBUG|",
    ]
    venv = "/opt/mien/venvs/dev/bin"
    # Shims first, the persona's PATH addition, the inherited PATH, the venv last; a
    # second source (a nested login shell) moves nothing and duplicates no shim.
    once = source(shell, profile, 'echo "$PATH"', f"/usr/bin:{SHIMS}:/bin").strip()
    assert once == f"{SHIMS}:/opt/tools/bin:/usr/bin:/bin:{venv}"
    twice = source(shell, profile, f'. {profile}; echo "$PATH"', "/usr/bin:/bin").strip()
    assert twice.split(":").count(SHIMS) == 1
    assert twice.split(":")[0] == SHIMS
    assert twice.split(":").count(venv) == 1


def test_environment_d_is_read_by_systemd(driver, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    generator = Path(
        "/usr/lib/systemd/user-environment-generators/30-systemd-environment-d-generator"
    )
    if not generator.exists():
        pytest.skip("systemd's environment.d generator is not installed")
    driver.apply(EnvironmentHandler(), {"environment_variables": {**TRICKY, "EMPTY": ""}})
    conf = tmp_path / "xdg" / "environment.d"
    conf.mkdir(parents=True)
    shutil.copy(driver.path(ENVIRONMENT_D), conf / "50-mien.conf")
    out = subprocess.run(
        [str(generator)],
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": "/nonexistent",
            "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        },
        capture_output=True,
        text=True,
        check=True,
    )
    assert "invalid syntax" not in out.stderr
    # The generator prints what it set, shell-quoted: read it back with a real shell.
    shown = subprocess.run(
        [
            "sh",
            "-c",
            out.stdout + '\nprintf "%s|\\n" "$QUOTES" "$DOLLAR" "$SLASHES" "$SPACES" "$PATH"',
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert shown == [
        f"{TRICKY['QUOTES']}|",
        f"{TRICKY['DOLLAR']}|",
        f"{TRICKY['SLASHES']}|",
        f"{TRICKY['SPACES']}|",
        f"{SHIMS}:/opt/tools/bin:/usr/bin:/bin|",
    ]


def test_files_are_written_even_without_variables(driver) -> None:  # type: ignore[no-untyped-def]
    result = driver.apply(EnvironmentHandler(), {})
    assert {f.path for f in result.files} == {PROFILE, ENVIRONMENT_D}
    assert SHIMS in driver.path(PROFILE).read_text()
    assert not [n for n in result.notes if n.status == "applied"]


def test_explicit_variable_wins_and_missing_editor_is_pending(driver) -> None:  # type: ignore[no-untyped-def]
    result = driver.apply(
        EnvironmentHandler(),
        {"os_settings": {"editor": "vim"}, "environment_variables": {"EDITOR": "nano"}},
    )
    text = driver.path(PROFILE).read_text()
    assert "export EDITOR='nano'" in text and "export VISUAL='vim'" in text
    notes = {(n.setting, n.status) for n in result.notes}
    assert ("os_settings.editor", "pending") in notes  # no nano/vim in this root
    (driver.root / "usr/bin").mkdir(parents=True, exist_ok=True)
    vim = driver.root / "usr/bin/vim"
    vim.write_text("#!/bin/sh\n")
    vim.chmod(0o755)
    notes = {
        (n.setting, n.status)
        for n in driver.plan(EnvironmentHandler(), {"os_settings": {"editor": "vim"}}).notes
    }
    assert ("os_settings.editor", "applied") in notes


def test_user_edits_become_customizations(driver) -> None:  # type: ignore[no-untyped-def]
    handler = EnvironmentHandler()
    base = {
        "environment_variables": {"APP_ENV": "one", "KEEP": "same"},
        "os_settings": {"editor": "vim"},
    }
    driver.apply(handler, base)
    profile, envd = driver.path(PROFILE), driver.path(ENVIRONMENT_D)
    profile.write_text(
        profile.read_text().replace("export EDITOR='vim'", "export EDITOR='emacs -nw'")
        + "export MINE='added by me'\n"
    )
    envd.write_text(envd.read_text().replace('APP_ENV="one"', 'APP_ENV="two"'))
    driver.apply(handler, base)
    assert sorted((c.key, c.value, c.source) for c in driver.captured) == [
        ("environment_variables.APP_ENV", "two", ENVIRONMENT_D),
        ("environment_variables.EDITOR", "emacs -nw", PROFILE),
        ("environment_variables.MINE", "added by me", PROFILE),
    ]
    # Unchanged files capture nothing.
    driver.apply(handler, base)
    assert driver.captured == []


def test_generated_files_are_owned_by_root(driver) -> None:  # type: ignore[no-untyped-def]
    if os.geteuid() != 0:
        pytest.skip("needs root to check ownership")
    driver.apply(EnvironmentHandler(), {"environment_variables": {"A": "1"}})
    st = driver.path(PROFILE).stat()
    assert (st.st_uid, st.st_gid) == (0, 0)
