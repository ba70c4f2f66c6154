"""The ide_extensions handler drives the editor's real CLI contract (``--list-extensions``,
``--install-extension``, ``--uninstall-extension``, run as the persona user inside the
root). VS Code itself cannot be downloaded here, so the root gets a small stand-in ``code``
that keeps the extension list in the user's home the way the real one keeps its
extensions directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mien.agent.handlers.ide import RECORD, IdeExtensionsHandler

from .conftest import install_program, install_shell, needs_chroot

CODE = """\
#!/bin/sh
# Stand-in for the VS Code CLI: the user's extensions, one id a line, in ~/.code-extensions.
db="$HOME/.code-extensions"
case "$1" in --user-data-dir=*) shift ;; esac
case "$1" in
--list-extensions)
    [ -f "$db" ] || exit 0
    while IFS= read -r line; do printf '%s\\n' "$line"; done < "$db" ;;
--install-extension)
    printf '%s\\n' "$2" >> "$db"
    echo "Extension '$2' was successfully installed." ;;
--uninstall-extension)
    found= rest=
    if [ -f "$db" ]; then
        while IFS= read -r line; do
            if [ "$line" = "$2" ]; then found=1; else rest="$rest$line
"; fi
        done < "$db"
    fi
    [ -n "$found" ] || { echo "Extension '$2' is not installed." >&2; exit 1; }
    printf '%s' "$rest" > "$db"
    echo "Extension '$2' was successfully uninstalled!" ;;
*) exit 2 ;;
esac
"""
SEED = {
    "os_settings": {"editor": "VSCode"},
    "application_settings": {"ide_extensions": ["python", "docker", "gitlens"]},
}


def extensions(root: Path) -> list[str]:
    db = root / "home/alice/.code-extensions"
    return db.read_text().split() if db.exists() else []


def test_editor_not_installed_is_pending_and_claims_nothing(driver) -> None:  # type: ignore[no-untyped-def]
    result = driver.plan(IdeExtensionsHandler(), SEED)
    assert result.operations == [] and result.files == []
    assert [(n.status, n.message) for n in result.notes] == [
        ("pending", "VS Code not installed: 3 extension(s) not applied")
    ]


def test_unknown_names_and_other_editors(driver) -> None:  # type: ignore[no-untyped-def]
    result = driver.plan(
        IdeExtensionsHandler(),
        {
            "os_settings": {"editor": "vim"},
            "application_settings": {"ide_extensions": ["python", "nope"]},
        },
    )
    assert [(n.status, n.message.split(":")[0]) for n in result.notes] == [
        ("failed", "'nope' is not an editor extension mien knows"),
        ("stored", "editor 'vim' has no extension installer mien drives"),
    ]


@pytest.fixture
def with_code(driver):  # type: ignore[no-untyped-def]
    install_shell(driver.root)
    install_program(driver.root, "/usr/bin/code", CODE)
    db = driver.root / "home/alice/.code-extensions"
    db.write_text("eamodio.gitlens\n")  # the user's own, from before mien
    os.chown(db, 1000, 1000)
    return driver


@needs_chroot
def test_installs_what_is_missing_as_the_user(with_code) -> None:  # type: ignore[no-untyped-def]
    driver = with_code
    handler = IdeExtensionsHandler()
    result = driver.apply(handler, SEED)
    assert [op.key for op in result.operations] == [
        "ide:install:alice:ms-python.python",
        "ide:install:alice:ms-azuretools.vscode-docker",
    ]
    assert extensions(driver.root) == [
        "eamodio.gitlens",
        "ms-python.python",
        "ms-azuretools.vscode-docker",
    ]
    assert (driver.root / "home/alice/.code-extensions").stat().st_uid == 1000  # ran as alice
    assert driver.managed[RECORD].meta["installed"] == [
        "ms-python.python",
        "ms-azuretools.vscode-docker",
    ]
    # Applied again: nothing to do.
    again = driver.plan(handler, SEED)
    assert again.operations == []
    assert [n.message for n in again.notes] == [
        "VS Code of alice: 3 extension(s) present, 0 to install"
    ]


@needs_chroot
def test_switch_removes_only_what_mien_installed(with_code) -> None:  # type: ignore[no-untyped-def]
    driver = with_code
    handler = IdeExtensionsHandler()
    driver.apply(handler, SEED)
    result = driver.apply(handler, {"application_settings": {"ide_extensions": ["python"]}})
    assert [op.key for op in result.operations] == [
        "ide:uninstall:alice:ms-azuretools.vscode-docker"
    ]
    assert extensions(driver.root) == ["eamodio.gitlens", "ms-python.python"]
    driver.apply(handler, {})
    assert extensions(driver.root) == ["eamodio.gitlens"]  # the user's extension stays
    assert RECORD not in driver.managed


@needs_chroot
def test_revert_works_from_the_data_alone(with_code) -> None:  # type: ignore[no-untyped-def]
    driver = with_code
    handler = IdeExtensionsHandler()
    op = driver.plan(handler, SEED).operations[0]
    handler.revert(driver.ctx(), op.data)  # crashed before perform: nothing to undo
    assert extensions(driver.root) == ["eamodio.gitlens"]
    handler.perform(driver.ctx(), op.data)
    assert "ms-python.python" in extensions(driver.root)
    handler.revert(driver.ctx(), op.data)
    assert extensions(driver.root) == ["eamodio.gitlens"]


@needs_chroot
def test_a_broken_editor_is_reported_not_fatal(driver) -> None:  # type: ignore[no-untyped-def]
    install_shell(driver.root)
    install_program(driver.root, "/usr/bin/code", "#!/bin/sh\necho 'cannot start' >&2\nexit 3\n")
    result = driver.plan(IdeExtensionsHandler(), SEED)
    assert result.operations == []
    assert [(n.status, n.message) for n in result.notes] == [
        (
            "failed",
            "extensions not applied: /usr/bin/code --list-extensions: exited with status 3: cannot start",
        )
    ]
