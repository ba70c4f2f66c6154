"""The packages_apt handler: what it decides from a root's dpkg database, its refusal of
roots that are not Debian, and — on a Debian machine, as root — a real install and undo of
a tiny package built here, from a local file repository that only this test's apt
configuration (``APT_CONFIG``) knows about, so the machine's own apt setup is not touched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mien.agent.engine import EngineError
from mien.agent.handlers.apt import RECORD, STATUS, AptHandler, autoremovable, parse_status
from mien.agent.handlers.base import Context
from mien.agent.handlers.users import lookup_user

from .conftest import install_program

DPKG_STATUS = """\
Package: ripgrep
Status: install ok installed
Version: 13.0.0-4+b2

Package: leftover
Status: install ok installed
Version: 2.0-1
"""


def debian(driver) -> None:  # type: ignore[no-untyped-def]
    status = driver.path(STATUS)
    status.parent.mkdir(parents=True)
    status.write_text(DPKG_STATUS)
    install_program(driver.root, "/usr/bin/apt-get", "#!/bin/sh\nexit 1\n")


def test_a_root_that_is_not_debian_is_refused(driver) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(
        EngineError,
        match=r"packages_apt: apt packages need a Debian or Ubuntu system.*var/lib/dpkg/status",
    ):
        driver.plan(AptHandler(), {"required_applications": [{"name": "ripgrep"}]})
    # Without apt packages the root does not matter.
    assert (
        driver.plan(
            AptHandler(), {"required_applications": [{"name": "x", "manager": "pip"}]}
        ).operations
        == []
    )


def test_plan_from_the_dpkg_database(driver) -> None:  # type: ignore[no-untyped-def]
    debian(driver)
    result = driver.plan(
        AptHandler(),
        {
            "required_applications": [
                {"name": "ripgrep", "version": "latest"},
                {"name": "jq"},
                {"name": "nginx", "version": "1.22.1-9"},
                {"name": "bad", "version": ">=2"},
                {"name": "left-pad", "manager": "npm"},
                {"name": "ripgrep-snap", "manager": "snap"},
                {"name": "pandas", "manager": "pip"},
            ]
        },
    )
    assert [op.key for op in result.operations] == ["apt:install"]
    data = result.operations[0].data
    assert data["install"] == ["jq", "nginx=1.22.1-9"]
    assert data["before"] == ["leftover", "ripgrep"]
    assert [f.path for f in result.files] == [RECORD]
    assert result.files[0].meta == {"installed": ["jq", "nginx"], "before": ["leftover", "ripgrep"]}
    notes = [(n.status, n.message) for n in result.notes]
    assert ("stored", "no handler for snap packages: ripgrep-snap not installed") in notes
    assert not any("left-pad" in m for _s, m in notes)  # npm packages have their handler
    assert any(s == "failed" and m.startswith("bad >=2") for s, m in notes)
    assert ("applied", "apt: 1 package(s) present, 2 to install") in notes


def test_switch_removes_only_what_mien_installed(driver) -> None:  # type: ignore[no-untyped-def]
    debian(driver)
    handler = AptHandler()
    record = {"installed": ["leftover"]}
    from mien.agent.handlers.base import ManagedRecord

    driver.manage(ManagedRecord(RECORD, handler.name, None, record))
    result = driver.plan(handler, {"required_applications": [{"name": "ripgrep"}]})
    assert [(op.key, dict(op.data)) for op in result.operations] == [
        (
            "apt:remove",
            {"remove": ["leftover"], "brought_in": [], "versions": {"leftover": "2.0-1"}},
        )
    ]
    assert result.files == []  # mien installed nothing that stays


def test_removal_takes_back_what_apt_brought_in(driver) -> None:  # type: ignore[no-untyped-def]
    """jq came with libjq1 and libonig5: removing jq offers them too (perform removes those
    apt's autoremove finds unneeded); what was there before mien's first install stays."""
    debian(driver)
    driver.path(STATUS).write_text(
        DPKG_STATUS
        + "".join(
            f"\nPackage: {name}\nStatus: install ok installed\nVersion: {version}\n"
            for name, version in (("jq", "1.6-2.1"), ("libjq1", "1.6-2.1"), ("libonig5", "6.9.8-1"))
        )
    )
    handler = AptHandler()
    from mien.agent.handlers.base import ManagedRecord

    record = {"installed": ["jq"], "before": ["leftover", "ripgrep"]}
    driver.manage(ManagedRecord(RECORD, handler.name, None, record))
    result = driver.plan(handler, {"required_applications": [{"name": "ripgrep"}]})
    assert [(op.key, dict(op.data)) for op in result.operations] == [
        (
            "apt:remove",
            {
                "remove": ["jq"],
                "brought_in": ["libjq1", "libonig5"],
                "versions": {"jq": "1.6-2.1", "libjq1": "1.6-2.1", "libonig5": "6.9.8-1"},
            },
        )
    ]
    # A second apply keeps the first snapshot, so a later switch still knows what came in.
    again = driver.plan(handler, {"required_applications": [{"name": "jq"}]})
    assert again.files[0].meta == record


def test_autoremovable_reads_apts_simulation() -> None:
    simulation = (
        "NOTE: This is only a simulation!\n"
        "Reading package lists...\n"
        "The following packages will be REMOVED:\n  libjq1 libonig5\n"
        "Remv libjq1 [1.6-2.1]\nRemv libonig5 [6.9.8-1]\n"
    )
    assert autoremovable(simulation) == ["libjq1", "libonig5"]


CONTROL = """\
Package: mien-test-tiny
Version: 1.0
Architecture: all
Maintainer: mien tests <tests@example.invalid>
Description: tiny package for the apt handler tests
"""


def _debian_machine() -> str | None:
    if os.geteuid() != 0:
        return "needs root (installs a package on this machine)"
    for tool in ("apt-get", "dpkg", "dpkg-deb", "dpkg-scanpackages"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    if "mien-test-tiny" in parse_status(Path(STATUS).read_text())[0]:
        return "mien-test-tiny is already installed on this machine"
    return None


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.skipif(_debian_machine() is not None, reason=str(_debian_machine()))
def test_real_install_and_undo_on_this_machine(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN/control").write_text(CONTROL)
    doc = pkg / "usr/share/doc/mien-test-tiny"
    doc.mkdir(parents=True)
    (doc / "README").write_text("installed by mien's tests\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(
        [
            "dpkg-deb",
            "--root-owner-group",
            "--build",
            str(pkg),
            str(repo / "mien-test-tiny_1.0_all.deb"),
        ],
        check=True,
        capture_output=True,
    )
    packages = subprocess.run(
        ["dpkg-scanpackages", "."], cwd=repo, check=True, capture_output=True, text=True
    ).stdout
    (repo / "Packages").write_text(packages)
    state = tmp_path / "apt"
    for d in ("lists/partial", "cache/archives/partial", "sources.list.d"):
        (state / d).mkdir(parents=True)
    (state / "sources.list").write_text(f"deb [trusted=yes] file:{repo} ./\n")
    config = tmp_path / "apt.conf"
    config.write_text(
        f'Dir::Etc::SourceList "{state}/sources.list";\n'
        f'Dir::Etc::SourceParts "{state}/sources.list.d";\n'
        f'Dir::State::Lists "{state}/lists";\n'
        f'Dir::Cache "{state}/cache";\n'
        'Acquire::AllowInsecureRepositories "true";\n'
    )
    ctx = Context(
        Path("/"), lookup_user(Path("/"), "root"), "apt-test", {}, env={"APT_CONFIG": str(config)}
    )
    handler = AptHandler()
    result = handler.plan(ctx, _persona())
    assert [op.key for op in result.operations] == ["apt:install"]
    op = result.operations[0]
    ctx.stop_caching()  # as the engine does before it changes anything
    try:
        handler.perform(ctx, op.data)
        assert parse_status(Path(STATUS).read_text())[0].get("mien-test-tiny") == "1.0"
        assert Path("/usr/share/doc/mien-test-tiny/README").exists()
        assert handler.plan(ctx, _persona()).operations == []  # installed: nothing to do
    finally:
        handler.revert(ctx, op.data)
    assert "mien-test-tiny" not in parse_status(Path(STATUS).read_text())[0]
    assert not Path("/usr/share/doc/mien-test-tiny").exists()
    assert json.loads(json.dumps(dict(op.data)))  # the undo data is plain JSON


def _persona():  # type: ignore[no-untyped-def]
    from mien.spec.models import Persona

    return Persona.model_validate({"required_applications": [{"name": "mien-test-tiny"}]})
