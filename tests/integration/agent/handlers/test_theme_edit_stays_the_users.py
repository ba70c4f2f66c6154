"""Through the real ``mien apply`` on a temp root: a user's edit of their own GTK settings
is the user's. It stays in the user's files across applies, and never becomes the
machine's GNOME default (``/etc/dconf/db/local.d``), which is the persona's for everyone."""

from __future__ import annotations

from pathlib import Path

from tests.support import make_machine, run_mien

GTK3 = "home/alice/.config/gtk-3.0/settings.ini"
KEYFILE = "etc/dconf/db/local.d/50-mien-theme"


def apply(root: Path, target: Path):  # type: ignore[no-untyped-def]
    return run_mien("apply", target, "--root", root, "--user", "alice", "--yes")


def test_a_users_gtk_edit_stays_per_user(tmp_path: Path) -> None:
    root = make_machine(tmp_path / "root")
    persona = tmp_path / "dark.yaml"
    persona.write_text("name: dark\nos_settings: {theme: dark}\n")
    first = apply(root, persona)
    assert first.returncode == 0, first.stderr
    assert "color-scheme='prefer-dark'" in (root / KEYFILE).read_text()

    gtk = root / GTK3
    gtk.write_text(gtk.read_text().replace("prefer-dark-theme=1", "prefer-dark-theme=0"))
    again = apply(root, persona)
    assert again.returncode == 0, again.stderr
    # The user's choice is kept in the user's files ...
    assert "gtk-application-prefer-dark-theme=0" in gtk.read_text()
    assert "gtk-application-prefer-dark-theme=0" in (root / GTK3.replace("3.0", "4.0")).read_text()
    # ... and the machine's default for every other user is still the persona's.
    assert "color-scheme='prefer-dark'" in (root / KEYFILE).read_text()

    third = apply(root, persona)
    assert third.returncode == 0, third.stderr
    assert "gtk-application-prefer-dark-theme=0" in gtk.read_text()
    assert "color-scheme='prefer-dark'" in (root / KEYFILE).read_text()


def test_a_theme_only_the_user_chose_is_no_machine_default(tmp_path: Path) -> None:
    root = make_machine(tmp_path / "root")
    persona = tmp_path / "plain.yaml"
    persona.write_text("name: plain\nenvironment_variables: {X: '1'}\n")
    assert apply(root, persona).returncode == 0
    custom = run_mien("customize", "set", "os_settings.theme", "light", "--root", root)
    assert custom.returncode == 0, custom.stderr
    assert "gtk-application-prefer-dark-theme=0" in (root / GTK3).read_text()
    assert not (root / KEYFILE).exists()
