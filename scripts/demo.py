"""``make demo``: a guided walk through mien, every step a real ``mien`` command.

Part 1 reads the concept documents' own persona files. Part 2 applies personas to a
throw-away machine root (``demo-root/vm1``: a directory laid out like a small Debian system,
so nothing outside it changes), switches, keeps the user's edit, rolls back, and is refused
a restricted command. Part 3 starts the Persona Manager Service on its embedded SQLite
default, enrolls two agents on two more roots, pushes personas, binds one by tag, activates
another explicitly, runs remote commands and reads the audit trail. Part 4 signs in to the
dashboard of that running fleet and fetches the pages a person would open.

Everything is written under ``demo-root/`` (recreated on each run) and every server or
agent process started here is stopped before the demo ends.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Where the demo writes (a test points it at a temporary directory).
DEMO = Path(os.environ.get("MIEN_DEMO_ROOT") or REPO / "demo-root").resolve()
EXAMPLES = REPO / "examples" / "personas"
MIEN = str(Path(sys.executable).with_name("mien"))
BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")

PASSWD = """\
root:x:0:0:root:/root:/bin/bash
alice:x:1000:1000:Alice Example,,,:/home/alice:/bin/bash
"""
SHELLS = "/bin/sh\n/bin/bash\n/usr/bin/bash\n/bin/zsh\n/usr/bin/zsh\n"
ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "110"}


def heading(text: str) -> None:
    print(f"\n{BOLD}== {text}{RESET}", flush=True)


def say(text: str) -> None:
    print(f"{DIM}# {text}{RESET}", flush=True)


def rel(arg: object) -> str:
    text = str(arg)
    return text.replace(str(REPO) + "/", "") if text.startswith(str(REPO)) else text


def mien(
    *args: object, check: bool = True, show: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run and show one mien command, as a user would type it."""
    print(f"{BOLD}$ mien {' '.join(rel(a) for a in args)}{RESET}", flush=True)
    result = subprocess.run(
        [MIEN, *map(rel, args)],
        capture_output=True,
        text=True,
        env=env or ENV,
        check=False,
        cwd=REPO,
    )
    if show:
        for stream in (result.stdout, result.stderr):
            if stream.strip():
                print(_once(stream.rstrip()))
    if check and result.returncode != 0:
        print(f"(exit status {result.returncode})")
        raise SystemExit(f"demo step failed: mien {' '.join(map(str, args))}")
    if not check:
        print(f"{DIM}(exit status {result.returncode}){RESET}")
    return result


_shown_notes: set[str] = set()


def _once(text: str) -> str:
    """The output with a block of notes (``pending:`` and its indented lines) already
    shown earlier replaced by one line saying so."""
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip(":") in ("pending", "stored, not applied", "not applied") and line.endswith(
            ":"
        ):
            j = i + 1
            while j < len(lines) and lines[j].startswith("  "):
                j += 1
            block = "\n".join(lines[i:j])
            if block in _shown_notes:
                out.append(f"{DIM}({line[:-1]}: the same {j - i - 1} settings as above){RESET}")
            else:
                _shown_notes.add(block)
                out.extend(lines[i:j])
            i = j
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def tree_sha256(root: Path) -> str:
    """One checksum over every file, link and directory of a machine root (paths, modes and
    bytes), leaving out mien's own records under var/lib/mien and var/log/mien."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel_path = path.relative_to(root).as_posix()
        if rel_path.startswith(("var/lib/mien", "var/log/mien")) or rel_path in (
            "var",
            "var/lib",
            "var/log",
        ):
            continue
        st = path.lstat()
        digest.update(f"{rel_path}\0{st.st_mode:o}\0".encode())
        if path.is_symlink():
            digest.update(os.readlink(path).encode())
        elif path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def machine(name: str) -> Path:
    root = DEMO / name
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text("root:x:0:\nalice:x:1000:\n")
    (root / "etc" / "shells").write_text(SHELLS)
    (root / "home" / "alice").mkdir(parents=True)
    # Stand-ins for the login shells the examples use: mien refuses one the root lacks.
    (root / "bin").mkdir()
    for shell in ("bash", "zsh"):
        (root / "bin" / shell).write_text("#!/bin/sh\n")
        (root / "bin" / shell).chmod(0o755)
    return root


def part_language() -> None:
    heading("1. The persona language: the concept documents' own files load as they stand")
    examples = sorted(p for p in EXAMPLES.iterdir() if p.is_file())
    mien("validate", *examples)
    say(
        "HighTraffic.yaml writes rules in words; render shows how mien reads them (CEL, durations, actions)"
    )
    mien("render", EXAMPLES / "HighTraffic.yaml")
    say("explain says which document set a value, and what it overrode")
    mien("explain", EXAMPLES / "workstation.yaml", "behavioral_settings.security_scan_frequency")


def part_machine() -> None:
    heading("2. One machine: plan, apply, switch, keep the user's edit, roll back")
    vm = machine("vm1")
    say(f"{rel(vm)} is a throw-away machine root; --root points mien at it (production uses /)")
    developer = EXAMPLES / "persona_developer.yml"
    analyst = EXAMPLES / "persona_data_analyst.yml"
    mien("plan", developer, "--root", vm, "--user", "alice", "--no-diff")
    mien("apply", developer, "--root", vm, "--user", "alice", "--yes")
    first = tree_sha256(vm)
    say(f"checksum of every file under {rel(vm)} now (history #1): sha256:{first[:16]}")
    mien("status", "--root", vm)
    say("The developer's editor and theme, as the machine now has them:")
    print((vm / "etc/environment.d/50-mien.conf").read_text().rstrip())
    print((vm / "home/alice/.config/gtk-3.0/settings.ini").read_text().rstrip())

    say("Switch live to the data analyst persona")
    mien("apply", analyst, "--root", vm, "--yes", show=False)
    config = vm / "home/alice/.jupyter/jupyter_server_config.json"
    data = json.loads(config.read_text())
    say(f"alice edits {rel(config).split('vm1')[-1]}: port 9999, and a key of her own")
    data["ServerApp"]["port"] = 9999
    data["NotebookApp"] = {"shutdown_no_activity_timeout": 3600}
    config.write_text(json.dumps(data, indent=2) + "\n")
    say("Switch to developer and back: her edit is captured as a customization and survives")
    mien("apply", developer, "--root", vm, "--yes", show=False)
    mien("apply", analyst, "--root", vm, "--yes", show=False)
    print(config.read_text().rstrip())
    mien("customize", "list", "--root", vm)
    say("Her own layer over any persona; a key the persona locks would be refused")
    mien("customize", "set", "os_settings.theme", "dark", "--root", vm)
    mien("history", "--root", vm)
    say("Roll back to the very first state, byte for byte")
    mien("rollback", "--to", "1", "--root", vm, "--yes")
    after = tree_sha256(vm)
    say(
        f"checksum after the rollback: sha256:{after[:16]} "
        + ("(the same as at history #1)" if after == first else "(DIFFERENT from history #1)")
    )
    if after != first:
        raise SystemExit("demo step failed: the rollback did not restore history #1 exactly")
    mien("status", "--root", vm)
    say("The security auditor restricts commands: refused with status 126, and audited")
    mien("apply", EXAMPLES / "persona_security_auditor.yml", "--root", vm, "--yes", show=False)
    mien("exec", "--root", vm, "--", "shutdown", "-h", "now", check=False)
    mien("exec", "--root", vm, "--", "echo", "other commands run as usual")
    last = (vm / "var/log/mien/audit.jsonl").read_text().splitlines()[-1]
    say(f"last audit line: {last}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the server did not start:\n{log.read_text()}")


def part_fleet(processes: list[subprocess.Popen[bytes]]) -> tuple[str, str, int]:
    heading("3. A fleet: the Persona Manager Service on its embedded SQLite default")
    data = DEMO / "server"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = DEMO / "server.log"
    print(f"{BOLD}$ mien server --data {rel(data)} --port {port} &{RESET}")
    with log.open("wb") as fh:
        server = subprocess.Popen(
            [MIEN, "server", "--data", str(data), "--port", str(port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=ENV,
        )
    processes.append(server)
    wait_healthy(url, server, log)
    print("\n".join(line for line in log.read_text().splitlines()[:6]))
    token = (data / "admin.token").read_text().strip()
    env = {**ENV, "MIEN_SERVER": url, "MIEN_TOKEN": token}
    say("The CLI reads MIEN_SERVER and MIEN_TOKEN (or flags, or ~/.config/mien/config.toml)")

    def admin(*args: object, **kw: object) -> subprocess.CompletedProcess[str]:
        return mien(*args, env=env, **kw)  # type: ignore[arg-type]

    enroll = admin(
        "token",
        "create",
        "--role",
        "enroll",
        "--name",
        "demo",
        "--uses",
        "2",
        "--output",
        "json",
        show=False,
    )
    enroll_token = json.loads(enroll.stdout)["token"]
    roots = {}
    for name, tag in (("web1", "role=web"), ("db1", "role=db")):
        root = machine(name)
        roots[name] = root
        mien(
            "agent",
            "enroll",
            "--server",
            url,
            "--token",
            enroll_token,
            "--tag",
            tag,
            "--hostname",
            name,
            "--user",
            "alice",
            "--root",
            root,
        )
        agent_log = DEMO / f"{name}-agent.log"
        print(f"{BOLD}$ mien agent run --root {rel(root)} &{RESET}")
        with agent_log.open("wb") as fh:
            processes.append(
                subprocess.Popen(
                    [MIEN, "agent", "run", "--root", str(root), "--wait", "10"],
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    env=ENV,
                )
            )
    admin(
        "persona",
        "push",
        EXAMPLES / "persona_developer.yml",
        EXAMPLES / "test-runner.json",
        EXAMPLES / "HighTraffic.yaml",
    )
    admin("persona", "list")
    say("Bind every machine tagged role=web to the developer persona and watch it roll out")
    admin(
        "bind",
        "add",
        "web-devs",
        "--selector",
        "role=web",
        "--persona",
        "developer",
        "--wait",
        "--timeout",
        "60s",
    )
    say("Activate the test-runner persona explicitly on the db machine (waits until applied)")
    instances = json.loads(admin("instance", "list", "--output", "json", show=False).stdout)
    ids = {i["hostname"]: i["id"] for i in instances}
    db, web = ids["db1"], ids["web1"]
    admin("instance", "activate", db, "test-runner", "--timeout", "60s")
    admin("instance", "list")
    admin("instance", "show", db)
    say("Remote commands go through the instance's routing table")
    admin("instance", "exec", db, "--", "shutdown", "-h", "now", check=False)
    admin("instance", "exec", db, "--", "deploy", "v1.4.2")
    admin("instance", "exec", web, "--", "uname", "-s")
    say("Which binding and version gave the web machine its persona")
    admin("instance", "effective", web)
    admin("audit", "--limit", "12")
    admin("audit", "verify")
    return url, token, port


def _text(html: str, pattern: str) -> str:
    import re
    from html import unescape

    found = re.search(pattern, html, re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split()) if found else ""


def part_dashboard(url: str, token: str, port: int) -> None:
    heading("4. The dashboard: the same fleet in a browser, under /ui")
    import re

    import httpx

    say("A headless pass over the pages a person would open, signed in with the admin token")
    with httpx.Client(base_url=url, timeout=10, follow_redirects=True) as http:
        form = http.get("/ui/login")
        nonce = re.search(r'name="csrf" value="([^"]+)"', form.text)
        signed = http.post(
            "/ui/login",
            data={"csrf": nonce.group(1) if nonce else "", "token": token, "next": "/ui/"},
        )
        if signed.status_code != 200:
            raise SystemExit(
                f"demo step failed: signing in to the dashboard ({signed.status_code})"
            )

        def names(html: str) -> str:
            found = re.findall(r'<tr><td><a href="[^"]+">([^<]+)</a>', html)
            return f"{len(found)} listed: " + ", ".join(found)

        pages = [
            ("/ui/", lambda h: _text(h, r'<p class="summary">(.*?)</p>')),
            ("/ui/personas", names),
            ("/ui/bindings", names),
            (
                "/ui/rollouts/binding/web-devs",
                lambda h: _text(h, r'<span id="rollout-line">(.*?)</span>'),
            ),
            ("/ui/audit?verify=true", lambda h: _text(h, r'id="verify-result">(.*?)</p>')),
            ("/ui/orchestrator", lambda h: _text(h, r'id="leader">(.*?)</p>')),
        ]
        for path, shows in pages:
            page = http.get(path)
            if page.status_code != 200:
                raise SystemExit(f"demo step failed: GET {path} answered {page.status_code}")
            title = _text(page.text, r"<h1>(.*?)</h1>")
            print(f"{BOLD}GET {path}{RESET}  {page.status_code}  {title}: {shows(page.text)}")
    print(
        "To look yourself, start the demo fleet's server again and open the dashboard:\n"
        f"  $ .venv/bin/mien server --data {rel(DEMO / 'server')} --port {port}\n"
        f"  open {url}/ui/ and sign in with the token in {rel(DEMO / 'server/admin.token')}\n"
        "  (Ctrl-C stops it; docs/dashboard.md says what each page shows)"
    )


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for proc in reversed(processes):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in processes:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    if DEMO.exists():
        shutil.rmtree(DEMO)
    DEMO.mkdir()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        part_language()
        part_machine()
        url, token, port = part_fleet(processes)
        part_dashboard(url, token, port)
    finally:
        stop(processes)
    heading("Done")
    print(f"Everything the demo wrote is under {rel(DEMO)}/ (machine roots, server data, logs).")
    print("Next: README.md for usage, docs/ for the language, the router and the API.")


if __name__ == "__main__":
    main()
