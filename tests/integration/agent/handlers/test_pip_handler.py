"""The packages_pip handler builds real virtualenvs with real pip, offline: the tests
write their own wheels and point pip at them (``PIP_FIND_LINKS`` + ``PIP_NO_INDEX``)."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest

from mien.agent.engine import EngineError
from mien.agent.handlers.base import HandlerError
from mien.agent.handlers.pip import MARKER, PipHandler

pytestmark = pytest.mark.slow


def make_wheel(directory: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel with a console script, written by hand."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n\ndef main():\n    print(VERSION)\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: mien-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist}/entry_points.txt": f"[console_scripts]\n{name.replace('_', '-')} = {name}:main\n",
    }
    record = []
    for path, text in files.items():
        digest = (
            base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        )
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


@pytest.fixture
def offline(driver, tmp_path: Path):  # type: ignore[no-untyped-def]
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "mien_tiny", "1.0")
    make_wheel(wheels, "mien_tiny", "2.0")
    driver.env = {"PIP_FIND_LINKS": str(wheels), "PIP_NO_INDEX": "1"}
    return driver


def version_in(venv: Path) -> str:
    out = subprocess.run(
        [str(venv / "bin/python"), "-c", "import mien_tiny; print(mien_tiny.VERSION)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def persona(version: str | None = None) -> dict:  # type: ignore[type-arg]
    pkg = {"name": "mien_tiny", "manager": "pip"}
    if version:
        pkg["version"] = version
    return {"required_applications": [pkg, {"name": "curl"}]}


def test_build_reapply_upgrade_and_switch(offline) -> None:  # type: ignore[no-untyped-def]
    driver = offline
    handler = PipHandler()
    result = driver.apply(handler, persona("1.0"), name="dev")
    assert [op.key for op in result.operations] == ["pip:build:dev"]
    venv = driver.path("/opt/mien/venvs/dev")
    assert version_in(venv) == "1.0"
    script = (venv / "bin/mien-tiny").read_text().splitlines()[0]
    assert script == "#!/opt/mien/venvs/dev/bin/python"  # where it lives on the machine
    assert sorted(p.name for p in venv.parent.iterdir()) == ["dev"]  # no staging, no backup

    # Re-applying the same persona decides from the marker: no pip, no operation.
    def no_processes(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("plan ran a process")

    import subprocess as sp

    original, sp.run = sp.run, no_processes  # type: ignore[assignment]
    try:
        again = driver.plan(handler, persona("1.0"), name="dev")
    finally:
        sp.run = original
    assert again.operations == []
    assert [n.status for n in again.notes] == ["applied"]

    # A new version builds a new venv and swaps it in; the backup goes at finish.
    driver.apply(handler, persona("2.0"), name="dev")
    assert version_in(venv) == "2.0"
    assert sorted(p.name for p in venv.parent.iterdir()) == ["dev"]

    # Another persona: its venv is built, the old persona's removed.
    result = driver.apply(handler, persona(">=1.0"), name="ops")
    assert sorted(op.key for op in result.operations) == ["pip:build:ops", "pip:remove:dev"]
    assert sorted(p.name for p in venv.parent.iterdir()) == ["ops"]
    assert version_in(venv.parent / "ops") == "2.0"


def test_revert_swaps_back(offline) -> None:  # type: ignore[no-untyped-def]
    driver = offline
    handler = PipHandler()
    driver.apply(handler, persona("1.0"), name="dev")
    venv = driver.path("/opt/mien/venvs/dev")
    op = driver.plan(handler, persona("2.0"), name="dev").operations[0]
    handler.perform(driver.ctx("dev"), op.data)
    assert version_in(venv) == "2.0"
    handler.revert(driver.ctx("dev"), op.data)
    assert version_in(venv) == "1.0"
    assert sorted(p.name for p in venv.parent.iterdir()) == ["dev"]
    # Removal is undone the same way until finish.
    removal = driver.plan(handler, {}, name="dev").operations[0]
    handler.perform(driver.ctx("dev"), removal.data)
    assert not venv.exists()
    handler.revert(driver.ctx("dev"), removal.data)
    assert version_in(venv) == "1.0"


def test_failed_install_leaves_nothing(offline) -> None:  # type: ignore[no-untyped-def]
    driver = offline
    handler = PipHandler()
    op = driver.plan(
        handler,
        {"required_applications": [{"name": "no-such-package-here", "manager": "pip"}]},
        name="dev",
    ).operations[0]
    with pytest.raises(
        HandlerError, match="pip install no-such-package-here: exited with status 1"
    ):
        handler.perform(driver.ctx("dev"), op.data)
    handler.revert(driver.ctx("dev"), op.data)
    assert not driver.path("/opt").exists()  # the directories the build made are gone too


def test_a_directory_mien_did_not_make_is_left_alone(offline) -> None:  # type: ignore[no-untyped-def]
    driver = offline
    driver.path("/opt/mien/venvs/dev").mkdir(parents=True)
    with pytest.raises(EngineError, match=r"packages_pip: .*exists and was not made by mien"):
        driver.plan(PipHandler(), persona(), name="dev")


def test_marker_records_the_specs(offline) -> None:  # type: ignore[no-untyped-def]
    driver = offline
    driver.apply(PipHandler(), persona(), name="dev")
    marker = driver.path(f"/opt/mien/venvs/dev/{MARKER}").read_text()
    assert '"mien_tiny"' in marker
