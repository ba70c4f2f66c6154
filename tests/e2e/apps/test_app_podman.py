"""Application personas end to end with the ``podman`` driver: a ``mien server``, a sandbox
host process (``mien agent run --sandbox-host --sandbox-driver podman``, which starts
``podman system service`` on a socket under its run directory) and a person using
``mien app`` — the lifecycle test_app_personas.py runs with the ``local`` driver.

A persona (an apt program, a configuration file, a flat setting, a read-only host mount, a
memory limit, no network) becomes ready as a container; programs run inside with their
settings; the limits hold; a shell works on a terminal and on pipes; the persona image is
built once and found again by its content hash for the next lease; release removes the
container and frees the ledger. The service the host started is stopped after the test.

Skips, saying why, without root, podman that can run containers, or the cached Debian
base root.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.apps.support import (
    ServerProcess,
    hosts,
    mien,
    push,
    reporter,
    sandbox_host,
    status,
    wait_until,
)
from tests.terminal import Terminal

pytestmark = [pytest.mark.root, pytest.mark.slow]

REPORTER = reporter("reporter-podman")


def podman(runs: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``podman`` against the service the sandbox host started."""
    url = f"unix://{runs / 'podman' / 'podman.sock'}"
    return subprocess.run(
        ["podman", "--url", url, *args], capture_output=True, text=True, timeout=120, check=False
    )


def containers(runs: Path, lease: str) -> list[str]:
    done = podman(
        runs, "ps", "-a", "--filter", f"label=mien.lease={lease}", "--format", "{{.Names}}"
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def persona_images(name: str) -> list[tuple[str, str]]:
    from mien.agent.sandbox import images

    return [(i.name, i.created) for i in images.list_images() if i.recipe == name]


@pytest.fixture
def podman_works(sandboxes: Path) -> Path:
    from mien.agent.sandbox.podman import PodmanDriver

    missing = PodmanDriver(runs=sandboxes).available()
    if missing:
        pytest.skip(f"podman sandbox driver: {missing}")
    info = subprocess.run(
        ["podman", "info"], capture_output=True, text=True, timeout=120, check=False
    )
    if info.returncode != 0:
        pytest.skip(f"podman cannot run here: {info.stderr.strip()[-300:]}")
    return sandboxes


def test_the_lease_lifecycle_with_the_podman_driver(
    tmp_path: Path, podman_works: Path, server: ServerProcess, listener: int
) -> None:
    runs = podman_works
    admin = server.client()
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "weekly.txt").write_text("Weekly report\n")
    persona = {
        **REPORTER,
        "access_controls": {"filesystem": [{"path": str(templates), "mode": "ro"}]},
    }
    with sandbox_host(tmp_path, runs, server, admin, driver="podman") as (instance, agent):
        push(server, tmp_path, persona)
        ann = admin.create_token("ann", role="user").token
        asked = mien(server, ann, "app", "request", "reporter-podman", "--wait")
        assert asked.returncode == 0, asked.stderr + agent.log()[-3000:]
        lease = asked.stdout.strip()
        assert containers(runs, lease) == [f"mien-lease-{lease}"]
        built = persona_images("reporter-podman")
        assert len(built) == 1, built

        ran = mien(
            server, ann, "app", "run", lease, "--", "perl", "-e",
            'print "$ENV{report_bucket}\\n"; open my $f, "<", "/etc/reporter.json" or die;'
            " print <$f>; open my $t, '<', '" + str(templates) + "/weekly.txt' or die; print <$t>",
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.startswith("s3://reports/weekly\n"), ran.stdout
        assert '"title": "weekly"' in ran.stdout and "Weekly report" in ran.stdout

        # The limits hold: memory, the read-only mount, no network.
        hog = mien(
            server, ann, "app", "run", lease, "--", "perl", "-e",
            '$x = "a" x (256 * 1024 * 1024); print "survived\\n"',
        )  # fmt: skip
        assert hog.returncode == 137 and "survived" not in hog.stdout, (hog.returncode, hog.stdout)
        write = mien(
            server, ann, "app", "run", lease, "--", "sh", "-c", f"echo x > {templates}/weekly.txt"
        )
        assert write.returncode != 0 and "Read-only file system" in write.stderr, write
        assert (templates / "weekly.txt").read_text() == "Weekly report\n"
        connect = mien(
            server, ann, "app", "run", lease, "--", "perl", "-MIO::Socket::INET", "-e",
            f"IO::Socket::INET->new(PeerAddr => '127.0.0.1:{listener}', Timeout => 3)"
            " or die qq(no connection: $@\\n); print qq(connected\\n)",
        )  # fmt: skip
        assert connect.returncode != 0 and "no connection" in connect.stderr, connect

        # A shell: on a terminal (podman exec -t, the holder's window size) and on pipes.
        env = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/root"),
            "TERM": "xterm",
            "MIEN_SERVER": server.url,
            "MIEN_TOKEN": ann,
        }
        term = Terminal(["app", "shell", lease], env, 31, 97)
        term.type("echo mark-$((6 * 7)) $(id -un) $report_bucket; stty size\r")
        term.expect(b"mark-42 app s3://reports/weekly")
        term.expect(b"31 97")
        term.type("exit 6\r")
        assert term.wait(60) == 6, term.seen
        os.close(term.fd)
        piped = mien(server, ann, "app", "shell", lease, "--", "sh", stdin="id -un; exit 4\n")
        assert (piped.returncode, piped.stdout) == (4, "app\n"), piped

        # A second lease of the same persona: the image is found by its hash, not rebuilt.
        again = mien(server, ann, "app", "request", "reporter-podman", "--wait")
        assert again.returncode == 0, again.stderr
        second = again.stdout.strip()
        assert persona_images("reporter-podman") == built

        # Release removes each container and frees the ledger.
        for each in (lease, second):
            released = mien(server, ann, "app", "release", each)
            assert released.returncode == 0, released.stderr
        wait_until(
            lambda: not containers(runs, lease) and not containers(runs, second),
            timeout=60,
            what="the containers removed",
        )
        wait_until(lambda: hosts(admin)[instance]["used_memory"] == 0, what="the ledger freed")
        assert status(server, ann, lease)["state"] == "released"
        late = mien(server, ann, "app", "run", lease, "--", "true")
        assert late.returncode != 0 and "released" in late.stderr, late.stderr
    admin.close()
    service = subprocess.run(
        ["pgrep", "-f", f"podman system service .*{runs}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert service.stdout.strip() == "", "the podman service of the test was left running"
