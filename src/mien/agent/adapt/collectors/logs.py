"""Collectors over files under the root: ``system_logs``, ``api_calls``, ``file_access`` and
``auth_events``. Each file is read only from where the previous sample stopped, capped, and
never through a link (:mod:`mien.agent.adapt.files`). See :mod:`mien.agent.adapt.collectors`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from mien.agent.adapt import parsing
from mien.agent.adapt.collectors.base import Collector, Sample
from mien.agent.adapt.files import LogTail, read_capped
from mien.agent.adapt.watch import Watcher
from mien.spec.models import Persona

FINDINGS_CAP = 1024 * 1024
"""The most of a security scan's findings file that is read."""


def _problem(path: str, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"{path}: not found"
    return str(exc) if str(exc).startswith(path) else f"{path}: {exc.strerror or exc}"


def _matcher(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda line: pattern.search(line) is not None


class SystemLogsCollector(Collector):
    domain = "system_logs"

    def __init__(self, persona: Persona, root: Path) -> None:
        self.logs = [
            (log.name, LogTail(root, log.path), re.compile(log.pattern, re.IGNORECASE))
            for log in persona.telemetry.logs
        ]

    def collect(self, sample: Sample) -> None:
        for name, tail, pattern in self.logs:
            try:
                n = tail.count(_matcher(pattern))
            except OSError as exc:
                sample.problems.append(_problem(tail.path, exc))
                continue
            if n is not None:
                sample.reading.events[f"log_errors:{name}"] = n
                sample.put_rate(f"log_errors_per_min:{name}", n)


class ApiCallsCollector(Collector):
    domain = "api_calls"

    def __init__(self, persona: Persona, root: Path) -> None:
        log = persona.telemetry.access_log
        self.format = log.format if log else "combined"
        self.tail = LogTail(root, log.path) if log else None

    def collect(self, sample: Sample) -> None:
        if self.tail is None:
            return
        try:
            got = self.tail.read()
        except OSError as exc:
            sample.problems.append(_problem(self.tail.path, exc))
            return
        if got is None or not sample.elapsed:
            return
        lines, scale = got
        requests = [r for r in (parsing.parse_access_line(x, self.format) for x in lines) if r]
        m, events = sample.reading.metrics, sample.reading.events
        errors = sum(1 for r in requests if r.status >= 500)
        events["api_requests"] = round(len(requests) * scale)
        events["api_errors"] = round(errors * scale)
        m["api_rps"] = len(requests) * scale / sample.elapsed
        if requests:
            m["api_error_rate"] = 100.0 * errors / len(requests)
        latencies = sorted(r.latency_ms for r in requests if r.latency_ms is not None)
        if latencies:
            for p in (50, 95, 99):
                m[f"api_latency_p{p}_ms"] = parsing.percentile(latencies, p)


class FileAccessCollector(Collector):
    domain = "file_access"

    def __init__(self, persona: Persona, root: Path) -> None:
        self.root = root
        self.paths = {w.name: w.path for w in persona.telemetry.watch}
        self.watcher: Watcher | None = None

    def collect(self, sample: Sample) -> None:
        if not self.paths:
            return
        if self.watcher is None:
            self.watcher = Watcher(self.root, self.paths)
        counts = self.watcher.drain()
        for name, problem in self.watcher.errors.items():
            sample.problems.append(f"{self.paths.get(name, 'watch')}: {problem}")
        for name, n in counts.items():
            sample.reading.events[f"file_changes:{name}"] = n
            sample.put_rate(f"file_changes_per_min:{name}", n)

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.close()


class AuthEventsCollector(Collector):
    domain = "auth_events"

    def __init__(self, persona: Persona, root: Path) -> None:
        t = persona.telemetry
        self.root = root
        self.auth = LogTail(root, t.auth_log)
        self.firewall = LogTail(root, t.firewall_log)
        self.findings_path = t.scan_findings
        self._findings: tuple[tuple[int, int, int], int] | None = None

    def collect(self, sample: Sample) -> None:
        m, events = sample.reading.metrics, sample.reading.events
        try:
            got = self.auth.read()
        except OSError as exc:
            sample.problems.append(_problem(self.auth.path, exc))
            got = None
        if got is not None:
            lines, scale = got
            outcomes = [parsing.auth_outcome(line) for line in lines]
            for kind, name in (("failure", "auth_failures"), ("success", "auth_successes")):
                n = round(outcomes.count(kind) * scale)
                events[name] = n
                sample.put_rate(f"{name}_per_min", n)
        try:
            blocks = self.firewall.count(
                lambda line: parsing.FIREWALL_LINE.search(line) is not None
            )
        except FileNotFoundError:
            blocks = None  # no kernel log file: the machine logs to the journal only
        except OSError as exc:
            sample.problems.append(_problem(self.firewall.path, exc))
            blocks = None
        if blocks is not None:
            events["firewall_blocks"] = blocks
            sample.put_rate("firewall_blocks_per_min", blocks)
        if self.findings_path is not None:
            try:
                found = self._count_findings(self.findings_path)
            except OSError as exc:
                sample.problems.append(_problem(self.findings_path, exc))
            else:
                if found is not None:
                    m["scan_findings"] = found

    def _count_findings(self, path: str) -> int | None:
        got = read_capped(self.root, path, FINDINGS_CAP)
        if got is None:
            return None  # no scan has written findings yet
        data, st = got
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if self._findings is None or self._findings[0] != key:
            self._findings = (key, parsing.count_findings(data))
        return self._findings[1]
