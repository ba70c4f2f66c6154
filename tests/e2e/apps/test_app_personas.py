"""Application personas end to end, with real processes on loopback: a ``mien server``,
one sandbox host (``mien agent run --sandbox-host --sandbox-driver local``: bubblewrap +
cgroup v1) and people using ``mien app`` with their ``user`` tokens.

A member of the ``marketing`` group asks for the example application persona and for a
second one (an apt program, a structured configuration file, a read-only host mount, a
memory limit, no network); both become ready; programs run inside with their settings;
the limits hold (memory, read-only mount, no network); someone else cannot touch the
leases; release removes each sandbox (files, cgroups, network namespace) and its ledger
entry; releasing twice and running in a released lease answer clear errors.

Skips, saying why, without root, bubblewrap or cgroup v1. The fixtures and helpers are
support.py's and conftest.py's (the cached Debian base root among them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mien.client import Client
from tests.e2e.apps.support import (
    SandboxHostProcess,
    ServerProcess,
    enroll,
    hosts,
    mien,
    reporter,
    status,
    traces,
    wait_until,
)
from tests.support import EXAMPLES, make_machine

pytestmark = [pytest.mark.root, pytest.mark.slow]

# The shared application persona; the test adds a read-only host mount and no network.
REPORTER = reporter("reporter")


def test_people_get_application_sandboxes_that_hold_their_limits_and_go_away(
    tmp_path: Path, sandboxes: Path, server: ServerProcess, listener: int
) -> None:
    admin = server.client()
    machine = make_machine(tmp_path / "host")
    instance = enroll(server, admin, machine)
    agent = SandboxHostProcess(machine, sandboxes, tmp_path / "host.log")
    try:
        wait_until(lambda: instance in hosts(admin), timeout=60, what="the host's offer")
        # The seed's example as written, but for its site's own host path and database
        # endpoint: here a directory of the test's, and no network.
        templates = tmp_path / "templates"
        templates.mkdir()
        (templates / "weekly.txt").write_text("Weekly report\n")
        example = json.loads((EXAMPLES / "marketing-app.json").read_text())
        example["access_controls"]["filesystem"] = [{"path": str(templates), "mode": "ro"}]
        del example["access_controls"]["network"]
        reporter = {
            **REPORTER,
            "access_controls": {
                "users": ["ann"],
                "filesystem": [{"path": str(templates), "mode": "ro"}],
            },
        }
        for document in (example, reporter):
            path = tmp_path / f"{document.get('name', 'example')}.json"
            path.write_text(json.dumps(document))
            pushed = mien(server, server.admin_token, "persona", "push", str(path))
            assert pushed.returncode == 0, pushed.stderr
        added = mien(server, server.admin_token, "group", "add", "marketing", "ann")
        assert added.returncode == 0, added.stderr
        admin_token = server.admin_token
        ann = admin.create_token("ann", role="user").token
        bob = admin.create_token("bob", role="user").token

        leases = {}
        for persona in ("marketing-report-creator", "reporter"):
            asked = mien(server, ann, "app", "request", persona, "--wait")
            assert asked.returncode == 0, asked.stderr + agent.log()[-3000:]
            leases[persona] = asked.stdout.strip()
            assert status(server, ann, leases[persona])["state"] == "ready"
        marketing, report = leases["marketing-report-creator"], leases["reporter"]

        # The installed applications run, with the persona's settings.
        ran = mien(
            server, ann, "app", "run", marketing, "--", "python3", "-c",
            "import os, sqlite3; print(os.environ['database_connection_string']);"
            " print(sqlite3.connect(':memory:').execute('select 6*7').fetchone()[0])",
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.splitlines() == [
            "postgresql://reports@warehouse.internal:5432/marketing",
            "42",
        ]
        version = mien(server, ann, "app", "run", marketing, "--", "sqlite3", "--version")
        assert version.returncode == 0 and version.stdout.startswith("3."), version.stderr
        ran = mien(
            server, ann, "app", "run", report, "--", "perl", "-e",
            'print "$ENV{report_bucket}\\n"; open my $f, "<", "/etc/reporter.json" or die;'
            " print <$f>; open my $t, '<', '" + str(templates) + "/weekly.txt' or die; print <$t>",
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.startswith("s3://reports/weekly\n"), ran.stdout
        assert '"title": "weekly"' in ran.stdout and "Weekly report" in ran.stdout

        # The limits hold: memory, the read-only mount, no network.
        hog = mien(
            server, ann, "app", "run", report, "--", "perl", "-e",
            '$x = "a" x (256 * 1024 * 1024); print "survived\\n"',
        )  # fmt: skip
        assert hog.returncode == 137 and "survived" not in hog.stdout, (hog.returncode, hog.stdout)

        def oom_shown() -> bool:
            return "OOM" in mien(server, ann, "app", "status", report).stdout

        wait_until(oom_shown, timeout=30, what="the OOM kill in mien app status")
        assert status(server, ann, report)["usage"]["oom_killed"] is True
        write = mien(
            server, ann, "app", "run", report, "--", "sh", "-c",
            f"echo x > {templates}/weekly.txt",
        )  # fmt: skip
        assert write.returncode != 0 and "Read-only file system" in write.stderr, write
        assert (templates / "weekly.txt").read_text() == "Weekly report\n"
        connect = mien(
            server, ann, "app", "run", report, "--", "perl", "-MIO::Socket::INET", "-e",
            f"IO::Socket::INET->new(PeerAddr => '127.0.0.1:{listener}', Timeout => 3)"
            " or die qq(no connection: $@\\n); print qq(connected\\n)",
        )  # fmt: skip
        assert connect.returncode != 0 and "no connection" in connect.stderr, connect

        # Someone else can neither run in nor release the leases.
        for args in (("run", report, "--", "true"), ("release", report)):
            refused = mien(server, bob, "app", *args)
            assert refused.returncode != 0
            assert refused.stderr == f"mien: lease {report} belongs to 'ann', not to 'bob'\n"
        with Client(server.url, bob) as as_bob:
            answer = as_bob._http.post(f"/api/v1/broker/leases/{report}/release")
            assert answer.status_code == 403, answer.text
        assert status(server, ann, report)["state"] == "ready"

        # Release removes each sandbox and its ledger entry.
        assert {p.name for p in sandboxes.iterdir() if p.name.startswith("lease-")} == {
            f"lease-{marketing}",
            f"lease-{report}",
        }
        assert hosts(admin)[instance]["used_memory"] == (512 + 64) * 2**20
        for lease in (marketing, report):
            released = mien(server, ann, "app", "release", lease)
            assert released.returncode == 0, released.stderr
        wait_until(lambda: not traces(marketing, sandboxes) and not traces(report, sandboxes),
                   timeout=60, what="the sandboxes destroyed")  # fmt: skip
        assert hosts(admin)[instance]["used_memory"] == 0
        assert mien(server, ann, "app", "list").stderr.startswith("no leases")
        assert (
            json.loads(mien(server, admin_token, "app", "list", "--all", "-o", "json").stdout) == []
        )
        assert status(server, ann, report)["state"] == "released"

        # Releasing twice and running in a released lease: clear errors.
        again = mien(server, ann, "app", "release", report)
        assert again.returncode != 0 and "released" in again.stderr, again.stderr
        late = mien(server, ann, "app", "run", report, "--", "true")
        assert late.returncode != 0 and "released" in late.stderr, late.stderr
    finally:
        code = agent.stop()
        admin.close()
    assert code == 0, agent.log()
