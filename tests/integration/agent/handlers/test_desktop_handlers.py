"""Login shell, theme and browser policies on a temp root: only the fields and keys mien
owns change, what was there before comes back when a persona stops setting them, and the
notes say what is waiting for software the root does not have."""

from __future__ import annotations

import json
import os

import pytest

from mien.agent.engine import EngineError
from mien.agent.handlers.browser import CHROME, CHROMIUM, FIREFOX, BrowserExtensionsHandler
from mien.agent.handlers.shell import PASSWD, RECORD, LoginShellHandler
from mien.agent.handlers.theme import COMPILED, KEYFILE, PROFILE, ThemeHandler

from .conftest import install_program, install_shell, needs_chroot

# --- login shell -------------------------------------------------------------------------


def test_login_shell_changes_one_field_and_comes_back(driver) -> None:  # type: ignore[no-untyped-def]
    passwd = driver.path(PASSWD)
    original = passwd.read_bytes()
    install_program(driver.root, "/usr/bin/zsh", "#!/bin/sh\n")
    result = driver.apply(LoginShellHandler(), {"os_settings": {"terminal_shell": "zsh"}})
    assert [(n.status, n.message) for n in result.notes] == [
        ("applied", "alice logs in with /usr/bin/zsh")
    ]
    assert [op.key for op in result.operations] == ["login-shell:alice"]
    assert passwd.read_bytes() == original.replace(
        b"/home/alice:/bin/bash", b"/home/alice:/usr/bin/zsh"
    )
    assert RECORD in driver.managed and PASSWD not in driver.managed  # never restored whole
    assert (
        driver.plan(LoginShellHandler(), {"os_settings": {"terminal_shell": "zsh"}}).operations
        == []
    )
    # A user added meanwhile stays; the old shell comes back when no persona sets one.
    passwd.write_bytes(passwd.read_bytes() + b"carol:x:1002:1002::/home/carol:/bin/sh\n")
    driver.apply(LoginShellHandler(), {})
    assert passwd.read_bytes() == original + b"carol:x:1002:1002::/home/carol:/bin/sh\n"
    assert RECORD not in driver.managed


def test_revert_works_from_the_data_alone(driver) -> None:  # type: ignore[no-untyped-def]
    install_program(driver.root, "/usr/bin/zsh", "#!/bin/sh\n")
    passwd = driver.path(PASSWD)
    original = passwd.read_bytes()
    handler = LoginShellHandler()
    op = driver.plan(handler, {"os_settings": {"terminal_shell": "zsh"}}).operations[0]
    handler.revert(driver.ctx(), op.data)  # crashed before perform: nothing to undo
    assert passwd.read_bytes() == original
    handler.perform(driver.ctx(), op.data)
    handler.perform(driver.ctx(), op.data)  # twice: still one change
    assert b"/home/alice:/usr/bin/zsh" in passwd.read_bytes()
    handler.revert(driver.ctx(), op.data)
    assert passwd.read_bytes() == original


def test_unlisted_shell_is_refused(driver) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EngineError, match=r"login_shell: .*'fish' is not a login shell .*/bin/sh"):
        driver.plan(LoginShellHandler(), {"os_settings": {"terminal_shell": "fish"}})
    # ... unless the persona installs it with apt in the same apply.
    result = driver.plan(
        LoginShellHandler(),
        {"os_settings": {"terminal_shell": "fish"}, "required_applications": [{"name": "fish"}]},
    )
    assert [dict(op.data) for op in result.operations] == [
        {"user": "alice", "old": "/bin/bash", "new": "/usr/bin/fish"}
    ]


def test_listed_but_missing_shell_is_refused(driver) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(
        EngineError, match=r"login_shell: .*terminal_shell: /bin/zsh .* not installed"
    ):
        driver.plan(LoginShellHandler(), {"os_settings": {"terminal_shell": "zsh"}})


def test_chsh_by_the_user_is_kept(driver) -> None:  # type: ignore[no-untyped-def]
    install_program(driver.root, "/usr/bin/zsh", "#!/bin/sh\n")
    driver.apply(LoginShellHandler(), {"os_settings": {"terminal_shell": "zsh"}})
    passwd = driver.path(PASSWD)
    passwd.write_text(passwd.read_text().replace("/home/alice:/usr/bin/zsh", "/home/alice:/bin/sh"))
    result = driver.apply(LoginShellHandler(), {"os_settings": {"terminal_shell": "zsh"}})
    assert result.operations == []
    assert "alice chose /bin/sh (chsh) after mien set /usr/bin/zsh: kept" in result.notes[0].message
    driver.apply(LoginShellHandler(), {})  # and it is not "restored" away either
    assert "/home/alice:/bin/sh" in passwd.read_text()


# --- theme -------------------------------------------------------------------------------

GTK3 = "/home/alice/.config/gtk-3.0/settings.ini"
GTK4 = "/home/alice/.config/gtk-4.0/settings.ini"


def test_theme_merges_gtk_settings_and_writes_dconf_defaults(driver) -> None:  # type: ignore[no-untyped-def]
    gtk3 = driver.path(GTK3)
    gtk3.parent.mkdir(parents=True)
    original = "# mine\n[Settings]\ngtk-font-name=Cantarell 11\n"
    gtk3.write_text(original)
    result = driver.apply(ThemeHandler(), {"os_settings": {"theme": "dark"}})
    assert gtk3.read_text().endswith(
        "# mine\n[Settings]\ngtk-font-name=Cantarell 11\ngtk-application-prefer-dark-theme=1\n"
    )
    assert (
        driver.path(GTK4).read_text().endswith("[Settings]\ngtk-application-prefer-dark-theme=1\n")
    )
    assert "color-scheme='prefer-dark'" in driver.path(KEYFILE).read_text()
    assert driver.path(PROFILE).read_text() == "user-db:user\nsystem-db:local\n"
    gtk_spec = next(f for f in result.files if f.path == GTK4)
    assert gtk_spec.desired is not None and (gtk_spec.desired.uid, gtk_spec.desired.gid) == (
        1000,
        1000,
    )
    assert ("pending", "dconf not installed") in {(n.status, n.message[:19]) for n in result.notes}
    assert result.operations == []
    # A theme name; then no theme: the user's file is theirs again, mien's files go.
    driver.apply(ThemeHandler(), {"os_settings": {"theme": "Nordic"}})
    assert "gtk-theme-name=Nordic" in gtk3.read_text()
    assert "prefer-dark" not in gtk3.read_text()
    assert "gtk-theme='Nordic'" in driver.path(KEYFILE).read_text()
    driver.apply(ThemeHandler(), {})
    assert gtk3.read_text() == original
    for path in (GTK4, KEYFILE, PROFILE):
        assert not driver.path(path).exists(), path


def test_gtk_edit_becomes_theme_customization(driver) -> None:  # type: ignore[no-untyped-def]
    persona = {"os_settings": {"theme": "dark"}}
    driver.apply(ThemeHandler(), persona)
    gtk4 = driver.path(GTK4)
    gtk4.write_text(gtk4.read_text().replace("prefer-dark-theme=1", "prefer-dark-theme=0"))
    driver.apply(ThemeHandler(), persona)
    assert [(c.key, c.value) for c in driver.captured] == [("os_settings.theme", "light")]


DCONF = """\
#!/bin/sh
# Stand-in for dconf: "update" compiles /etc/dconf/db/local.d/* into /etc/dconf/db/local.
[ "$1" = update ] || exit 2
: > /etc/dconf/db/local
for f in /etc/dconf/db/local.d/*; do
    [ -f "$f" ] || continue
    while IFS= read -r line; do printf '%s\\n' "$line" >> /etc/dconf/db/local; done < "$f"
done
"""


@needs_chroot
def test_dconf_update_runs_inside_the_root_and_is_undone(driver) -> None:  # type: ignore[no-untyped-def]
    install_shell(driver.root)
    install_program(driver.root, "/usr/bin/dconf", DCONF)
    handler = ThemeHandler()
    result = driver.apply(handler, {"os_settings": {"theme": "dark"}})
    assert [op.key for op in result.operations] == ["theme:dconf-update"]
    compiled = driver.path(COMPILED)
    assert "color-scheme='prefer-dark'" in compiled.read_text()
    # Nothing changed: nothing to compile.
    assert driver.plan(handler, {"os_settings": {"theme": "dark"}}).operations == []
    # A switch to light, then its undo: the compiled database follows the keyfile back.
    light = driver.plan(handler, {"os_settings": {"theme": "light"}})
    keyfile = next(f for f in light.files if f.path == KEYFILE)
    assert keyfile.desired is not None and keyfile.desired.content is not None
    driver.path(KEYFILE).write_bytes(keyfile.desired.content)  # the engine writes files first
    op = light.operations[0]
    handler.perform(driver.ctx(), op.data)
    assert "color-scheme='default'" in compiled.read_text()
    handler.revert(driver.ctx(), op.data)
    assert "color-scheme='prefer-dark'" in compiled.read_text()
    assert "prefer-dark" in driver.path(KEYFILE).read_text()


# --- browsers ----------------------------------------------------------------------------


def test_browser_policies_and_notes(driver) -> None:  # type: ignore[no-untyped-def]
    install_program(driver.root, "/usr/bin/chromium", "#!/bin/sh\n")
    firefox = driver.path(FIREFOX)
    firefox.parent.mkdir(parents=True)
    site = {
        "policies": {
            "DisableTelemetry": True,
            "ExtensionSettings": {"*": {"installation_mode": "allowed"}},
        }
    }
    firefox.write_text(json.dumps(site))
    result = driver.apply(
        BrowserExtensionsHandler(),
        {
            "application_settings": {
                "browser_extensions": ["adblock", "https everywhere", "frobnicate"]
            }
        },
    )
    forced = json.loads(driver.path(CHROMIUM).read_text())["ExtensionInstallForcelist"]
    assert forced == [
        "gighmmpiobklfepjocnamgkkbiglidom;https://clients2.google.com/service/update2/crx",
        "gcbommkclmclpchllfjekcdonpmejbdp;https://clients2.google.com/service/update2/crx",
    ]
    assert driver.path(CHROME).read_text() == driver.path(CHROMIUM).read_text()
    policies = json.loads(firefox.read_text())["policies"]
    assert policies["DisableTelemetry"] is True
    assert policies["ExtensionSettings"]["*"] == {"installation_mode": "allowed"}
    assert (
        policies["ExtensionSettings"]["https-everywhere@eff.org"]["installation_mode"]
        == "force_installed"
    )
    notes = [(n.status, n.message.split(":")[0]) for n in result.notes]
    assert ("failed", "'frobnicate' is not a browser extension mien knows") in notes
    assert ("applied", "chromium") in notes
    assert ("pending", "google chrome not installed") in notes
    assert ("pending", "firefox not installed") in notes
    # No extensions any more: mien's policy files go, Firefox's file is the site's again.
    driver.apply(BrowserExtensionsHandler(), {})
    assert not driver.path(CHROMIUM).exists() and not driver.path(CHROME).exists()
    assert json.loads(firefox.read_text()) == site
    if os.geteuid() == 0:
        assert firefox.stat().st_uid == 0
