"""Pure decisions of the built-in handlers, table-driven: names to ids, settings to lines,
files to facts. No I/O (the handlers' plans on real roots are in tests/integration)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mien.agent.handlers import apt, browser, ide, pip, schedules, settings_store, shell, theme
from mien.agent.handlers.base import HandlerError
from mien.agent.handlers.environment import (
    PATH_BEGIN,
    PATH_END,
    desired_variables,
    editor_command,
    render_environment_d,
    render_profile,
)
from mien.agent.handlers.extension_ids import browser_extension, ide_extension
from mien.agent.handlers.quoting import (
    cron_command,
    envd_word,
    parse_envd,
    parse_sh_assignments,
    sh_word,
    split_self,
)
from mien.spec.models import Package, Persona

# --- quoting -----------------------------------------------------------------------------

VALUES = [
    "plain",
    "",
    "two words",
    "it's",
    'say "hi"',
    "$HOME/bin",
    "back\\slash",
    "`cmd`",
    "a\nb",
    "50%",
]


@pytest.mark.parametrize("value", VALUES)
def test_sh_word_reads_back(value: str) -> None:
    assert parse_sh_assignments(f"export X={sh_word('X', value)}\n") == {"X": value}


@pytest.mark.parametrize("value", [v for v in VALUES if "\n" not in v])
def test_envd_word_reads_back(value: str) -> None:
    assert parse_envd(f"X={envd_word('X', value)}\n") == {"X": value}


def test_only_self_references_stay_references() -> None:
    assert split_self("PATH", "/opt/bin:$PATH:${PATH}:$PATHX") == [
        "/opt/bin:",
        None,
        ":",
        None,
        ":$PATHX",
    ]
    assert sh_word("PATH", "/opt/bin:$PATH") == "'/opt/bin:'\"${PATH}\""
    assert envd_word("PATH", "/opt/bin:$PATH:$HOME") == '"/opt/bin:${PATH}:$$HOME"'


def test_cron_command_escapes_percent_and_refuses_newlines() -> None:
    assert cron_command("date +%F") == "date +\\%F"
    with pytest.raises(HandlerError, match="one line"):
        cron_command("a\nb")


# --- environment -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("editor", "command"),
    [
        ("VSCode", "code --wait"),
        ("vscode", "code --wait"),
        ("Visual Studio Code", "code --wait"),
        ("code", "code --wait"),
        ("VSCodium", "codium --wait"),
        ("vim", "vim"),
        ("neovim", "nvim"),
        ("nano", "nano"),
        ("emacs", "emacs"),
        ("Sublime Text", "subl --wait"),
        ("/opt/bin/myed -x", "/opt/bin/myed -x"),
    ],
)
def test_editor_names(editor: str, command: str) -> None:
    assert editor_command(editor) == command


def test_explicit_variables_win_over_derived_ones() -> None:
    persona = Persona.model_validate(
        {
            "os_settings": {"editor": "vim"},
            "behavioral_settings": {"logging_level": "debug"},
            "environment_variables": {"VISUAL": "emacs", "A": "1"},
        }
    )
    assert desired_variables(persona) == {
        "VISUAL": "emacs",
        "A": "1",
        "EDITOR": "vim",
        "LOG_LEVEL": "DEBUG",
    }


def test_generated_files_read_back_as_the_variables() -> None:
    variables = {"EDITOR": "code --wait", "PATH": "/opt/x:$PATH", "Q": "it's $HOME", "E": ""}
    profile = render_profile("dev", variables, "/opt/mien/venvs/dev/bin")
    assert profile.startswith("# Managed by mien (persona dev).")
    assert parse_sh_assignments(profile, (PATH_BEGIN, PATH_END)) == {
        "EDITOR": "code --wait",
        "PATH": "/opt/x:${PATH}",
        "Q": "it's $HOME",
        "E": "",
    }
    envd = parse_envd(render_environment_d("dev", variables, None))
    assert envd == {
        "EDITOR": "code --wait",
        "Q": "it's $HOME",
        "PATH": "/usr/local/lib/mien/shims:/opt/x:${PATH}",
    }


# --- shells ------------------------------------------------------------------------------

LISTED = ["/bin/sh", "/bin/bash", "/usr/bin/bash", "/bin/zsh", "/usr/bin/zsh"]


@pytest.mark.parametrize(
    ("want", "present", "installing", "expected"),
    [
        ("zsh", {"/usr/bin/zsh"}, (), ("/usr/bin/zsh", True)),
        ("zsh", {"/bin/zsh", "/usr/bin/zsh"}, (), ("/bin/zsh", True)),
        ("zsh", set(), (), ("/bin/zsh", False)),
        ("/usr/bin/bash", {"/usr/bin/bash"}, (), ("/usr/bin/bash", True)),
        ("fish", set(), ("fish",), ("/usr/bin/fish", False)),
    ],
)
def test_choose_shell(
    want: str, present: set[str], installing: tuple[str, ...], expected: tuple[str, bool]
) -> None:
    assert shell.choose_shell(want, LISTED, present.__contains__, installing) == expected


def test_unlisted_shell_is_refused_with_the_available_ones() -> None:
    with pytest.raises(HandlerError, match=r"'fish' is not a login shell.*/bin/bash"):
        shell.choose_shell("fish", LISTED, {"/bin/sh", "/bin/bash"}.__contains__)
    with pytest.raises(HandlerError, match="not in /etc/shells"):
        shell.choose_shell("/opt/zsh", LISTED, lambda _: True)


def test_only_the_shell_field_of_that_line_changes() -> None:
    passwd = "root:x:0:0:root:/root:/bin/bash\r\nalice:x:1000:1000:A,,,:/home/alice:/bin/bash\nbob:x:1:1::/:/bin/sh"
    out = shell.with_shell(passwd, "alice", "/usr/bin/zsh")
    assert out == passwd.replace("/home/alice:/bin/bash", "/home/alice:/usr/bin/zsh")
    assert shell.passwd_shell(out, "alice") == "/usr/bin/zsh"
    with pytest.raises(HandlerError, match="local users"):
        shell.with_shell(passwd, "carol", "/bin/sh")


# --- extensions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "chrome", "gecko"),
    [
        ("adblock", "gighmmpiobklfepjocnamgkkbiglidom", "jid1-NIfFY2CA8fy1tg@jetpack"),
        ("https everywhere", "gcbommkclmclpchllfjekcdonpmejbdp", "https-everywhere@eff.org"),
        ("uBlock-Origin", "cjpalhdlnbpafiamejdnhcphjbkeiagm", "uBlock0@raymondhill.net"),
        (
            "Adblock Plus",
            "cfhdojbkjhnklbpkdaibdccddilifddb",
            "{d10d0bf8-f5b5-c8b4-a8b2-2b9879e08c5d}",
        ),
        ("privacy badger", "pkehgijcmpdhfbdbbnkijodmdjhbjlgp", "jid1-MnnxcxisBPnSXQ@jetpack"),
        ("Bitwarden", "nngceckbapebfimnlniiiahkandclblb", "{446900e4-71c2-419f-a6a7-df9c091e268b}"),
        ("1Password", "aeblfdkhhhdcdjpifhhbdiojplfjncoa", "{d634138d-c276-4fc8-924b-40a0ea21d284}"),
        ("React Developer Tools", "fmkadmapgofadopljbjfkapdkoienihi", "@react-devtools"),
        (
            "vue devtools",
            "nhdogjmejiglipccpnnnanhbledajbpd",
            "{5caff8cc-3d2e-4110-a88a-003cc85b3858}",
        ),
        ("dark reader", "eimadpbcbfnmbkopoojfekhnkhdbieeh", "addon@darkreader.org"),
        ("aapbdbdomjkkjkaonfhkkikfgjllcleb", "aapbdbdomjkkjkaonfhkkikfgjllcleb", None),
        ("abcdefghijklmnopabcdefghijklmnop", "abcdefghijklmnopabcdefghijklmnop", None),
    ],
)
def test_browser_extension_ids(entry: str, chrome: str, gecko: str | None) -> None:
    found = browser_extension(entry)
    assert found is not None and found.chrome == chrome
    assert (found.firefox[0] if found.firefox else None) == gecko


@pytest.mark.parametrize("entry", ["frobnicator", "abcdefghijklmnopabcdefghijklmnoz", ""])
def test_unknown_browser_extensions(entry: str) -> None:
    assert browser_extension(entry) is None


def test_browser_policies() -> None:
    known, unknown = browser.resolve(["adblock", "AdBlock", "nope", "google translate"])
    assert unknown == ["nope"]
    assert [e.title for e in known] == ["AdBlock", "Google Translate"]
    assert browser.chromium_policy(known) == {
        "ExtensionInstallForcelist": [
            "gighmmpiobklfepjocnamgkkbiglidom;https://clients2.google.com/service/update2/crx",
            "aapbdbdomjkkjkaonfhkkikfgjllcleb;https://clients2.google.com/service/update2/crx",
        ]
    }
    assert browser.firefox_settings(known) == {
        ("policies", "ExtensionSettings", "jid1-NIfFY2CA8fy1tg@jetpack"): {
            "installation_mode": "force_installed",
            "install_url": "https://addons.mozilla.org/firefox/downloads/latest/adblock-for-firefox/latest.xpi",
        }
    }


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("python", "ms-python.python"),
        ("docker", "ms-azuretools.vscode-docker"),
        ("gitlens", "eamodio.gitlens"),
        ("Pylance", "ms-python.vscode-pylance"),
        ("rust-analyzer", "rust-lang.rust-analyzer"),
        ("C++", "ms-vscode.cpptools"),
        ("ms-python.python", "ms-python.python"),
        ("Acme.tool@1.2.3", "Acme.tool@1.2.3"),
        ("no such thing", None),
    ],
)
def test_ide_extension_ids(entry: str, expected: str | None) -> None:
    assert ide_extension(entry) == expected


def test_ide_resolution_dedupes_and_lists_unknowns() -> None:
    assert ide.resolve(["python", "MS-Python.Python", "zzz"]) == (["ms-python.python"], ["zzz"])
    output = "Warning: something\nms-python.python\nEamodio.GitLens@15.0.0\n"
    assert ide.parse_extension_list(output) == {"ms-python.python", "eamodio.gitlens"}


# --- schedules ---------------------------------------------------------------------------


def test_cron_file_and_its_parse() -> None:
    text = schedules.cron_file(
        "dev",
        "behavioral_settings.auto_update_frequency",
        "daily",
        "5 3 * * *",
        "date +%F",
        "auto-update",
    )
    lines = text.splitlines()
    assert lines[0].startswith("# Managed by mien (persona dev).")
    assert lines[1:3] == [
        "SHELL=/bin/sh",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]
    assert lines[3].startswith("5 3 * * * root mkdir -p /var/log/mien && ")
    assert lines[3].endswith(">>/var/log/mien/auto-update.log 2>&1")
    assert "date +\\%F" in lines[3]
    assert schedules.parse_job(text, "auto-update") == ("5 3 * * *", "date +%F")
    assert schedules.parse_job(text.replace("mkdir -p", "true"), "auto-update") == (
        "5 3 * * *",
        None,
    )


@pytest.mark.parametrize(
    ("job", "installed", "expected"),
    [
        (0, {"unattended-upgrade"}, "unattended-upgrade"),
        (0, set(), "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -y -qq upgrade"),
        (1, {"lynis", "debsecan"}, "lynis audit system --cronjob"),
        (1, {"debsecan"}, "debsecan"),
        (1, set(), "apt-get update -qq && apt-get -s upgrade | grep -i security"),
    ],
)
def test_default_commands(job: int, installed: set[str], expected: str) -> None:
    assert schedules.default_command(schedules.JOBS[job], installed.__contains__) == expected


# --- packages ----------------------------------------------------------------------------

STATUS = """\
Package: ripgrep
Status: install ok installed
Version: 13.0.0-4+b2
Description: fast grep
 with a long description

Package: mawk
Status: install ok installed
Provides: awk
Version: 1.3.4.20200120-3.1

Package: gone
Status: deinstall ok config-files
Version: 1.0
"""


def test_dpkg_status_parse() -> None:
    installed, provided = apt.parse_status(STATUS)
    assert installed == {"ripgrep": "13.0.0-4+b2", "mawk": "1.3.4.20200120-3.1"}
    assert provided == {"awk"}


@pytest.mark.parametrize(
    ("pkg", "ok"),
    [
        ({"name": "ripgrep"}, True),
        ({"name": "ripgrep", "version": "latest"}, True),
        ({"name": "ripgrep", "version": "13.0.0"}, True),
        ({"name": "ripgrep", "version": "13.0.0-4+b2"}, True),
        ({"name": "ripgrep", "version": "14.0"}, False),
        ({"name": "awk"}, True),
        ({"name": "gone"}, False),
        ({"name": "ripgrep:amd64"}, True),
    ],
)
def test_apt_satisfied(pkg: dict[str, Any], ok: bool) -> None:
    installed, provided = apt.parse_status(STATUS)
    assert apt.satisfied(Package.model_validate(pkg), installed, provided) is ok


@pytest.mark.parametrize(
    ("pkg", "apt_spec", "pip_spec"),
    [
        ({"name": "x"}, "x", "x"),
        ({"name": "x", "version": "latest"}, "x", "x"),
        ({"name": "x", "version": "1.2"}, "x=1.2", "x==1.2"),
        ({"name": "x", "version": ">=2.2"}, "x=>=2.2", "x>=2.2"),
        ({"name": "x", "version": "~=1.4"}, "x=~=1.4", "x~=1.4"),
    ],
)
def test_package_specs(pkg: dict[str, Any], apt_spec: str, pip_spec: str) -> None:
    package = Package.model_validate(pkg)
    assert apt.apt_spec(package) == apt_spec
    assert pip.pip_spec(package) == pip_spec


def test_pip_marker() -> None:
    text = json.dumps({"specs": ["a", "b==1"], "python": pip.python_version()})
    assert pip.marker_matches(text, ["a", "b==1"])
    assert not pip.marker_matches(text, ["a"])
    assert not pip.marker_matches(None, ["a"])
    assert not pip.marker_matches("{broken", ["a"])


# --- theme, settings store ---------------------------------------------------------------


def test_theme_values() -> None:
    assert theme.gtk_keys("Dark") == {("Settings", "gtk-application-prefer-dark-theme"): "1"}
    assert theme.gtk_keys("light") == {("Settings", "gtk-application-prefer-dark-theme"): "0"}
    assert theme.gtk_keys("Adwaita-dark") == {("Settings", "gtk-theme-name"): "Adwaita-dark"}
    assert "color-scheme='prefer-dark'" in theme.dconf_keyfile("p", "dark")
    assert "color-scheme='default'" in theme.dconf_keyfile("p", "light")
    assert "gtk-theme='It\\'s'" in theme.dconf_keyfile("p", "It's")
    assert theme.theme_from_gtk("gtk-application-prefer-dark-theme", "0") == "light"
    assert theme.theme_from_gtk("gtk-application-prefer-dark-theme", "true") == "dark"
    assert theme.theme_from_gtk("gtk-theme-name", "Nord") == "Nord"


def test_unclaimed_settings() -> None:
    data = {
        "name": "p",
        "labels": {"a": "b"},
        "os_settings": {"theme": "dark", "font_size": 12},
        "application_configuration": {
            "jupyter": {"path": "/etc/j.json", "values": {}},
            "notes": {"values": {"a": 1}},
        },
        "resource_requirements": {"cpu": 2},
        "decay_rate": 0.1,
        "pre_activation_script": "true",
        "restricted_commands": ["reboot"],
        "environment_variables": {"A": "1"},
    }
    claimed = {
        "os_settings.theme",
        "application_configuration",
        "environment_variables",
        "restricted_commands",
    }
    assert settings_store.unclaimed(data, claimed) == {
        "os_settings.font_size": 12,
        "application_configuration.notes": {"values": {"a": 1}},
        "resource_requirements": {"cpu": 2},
        "decay_rate": 0.1,
    }
    # An adaptive field is the adaptation handler's; stored only where no handler claims it.
    assert settings_store.note_for("decay_rate").endswith("not applied: no handler")
    assert "no path" in settings_store.note_for("application_configuration.notes")
