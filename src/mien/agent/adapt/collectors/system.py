"""Collectors of the machine's own counters via psutil: ``metrics`` (with latency probes),
``network_traffic`` and ``processes``. See :mod:`mien.agent.adapt.collectors`."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from mien.agent.adapt.collectors.base import Collector, Sample
from mien.spec.models import Persona
from mien.spec.telemetry import Probe

if TYPE_CHECKING:
    import httpx

MAX_SOCKETS = 200_000
# Read-only images (snaps, CDs) are always full; their percentage says nothing.
_SKIP_FS = frozenset({"squashfs", "iso9660", "udf", "erofs"})
EPHEMERAL_FROM = 32768
"""Remote ports from here up are clients' ephemeral ports: counted in ``connections_total``
but not each as ``connections:<port>`` (they would be a new metric per client)."""


def _nic_totals() -> tuple[int, int]:
    rx = tx = 0
    for nic, c in psutil.net_io_counters(pernic=True).items():
        if nic != "lo":
            rx += c.bytes_recv
            tx += c.bytes_sent
    return rx, tx


class MetricsCollector(Collector):
    domain = "metrics"

    def __init__(self, persona: Persona, root: Path) -> None:
        self.probes = persona.telemetry.probes
        self._cpu: tuple[float, float] | None = None
        self._net: tuple[int, int] | None = None
        self._http: httpx.Client | None = None

    def collect(self, sample: Sample) -> None:
        m = sample.reading.metrics
        t = psutil.cpu_times()
        total = sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
        idle = t.idle + getattr(t, "iowait", 0.0)
        if self._cpu is not None and total > self._cpu[0]:
            busy = (total - idle) - (self._cpu[0] - self._cpu[1])
            m["cpu_percent"] = max(0.0, min(100.0, 100.0 * busy / (total - self._cpu[0])))
        self._cpu = (total, idle)
        m["load_1m"], m["load_5m"], _ = os.getloadavg()
        memory = psutil.virtual_memory()
        m["memory_percent"] = memory.percent
        # The machine's size, which the server compares with its persona's
        # resource_requirements (and a provider changes): the CPUs this process may use.
        m["cpu_count"] = float(len(os.sched_getaffinity(0)) or psutil.cpu_count() or 1)
        m["memory_total_mib"] = memory.total / 2**20
        m["swap_percent"] = psutil.swap_memory().percent
        for part in psutil.disk_partitions(all=False):
            if part.fstype in _SKIP_FS or f"disk_percent:{part.mountpoint}" in m:
                continue
            try:
                m[f"disk_percent:{part.mountpoint}"] = psutil.disk_usage(part.mountpoint).percent
            except OSError:
                continue  # a mount we may not stat (a stale network share)
        rx, tx = _nic_totals()
        if self._net is not None:
            sample.put_rate("net_rx_bps", max(0, rx - self._net[0]), per=1.0)
            sample.put_rate("net_tx_bps", max(0, tx - self._net[1]), per=1.0)
        self._net = (rx, tx)
        for probe in self.probes:
            try:
                m[f"latency_ms:{probe.name}"] = self._probe(probe)
            except OSError as exc:
                sample.reading.events[f"probe_failed:{probe.name}"] = 1
                sample.problems.append(f"probe {probe.name} ({probe.target}): {exc or 'failed'}")

    def _probe(self, probe: Probe) -> float:
        start = time.perf_counter()
        if probe.tcp is not None:
            host, _, port = probe.tcp.rpartition(":")
            with socket.create_connection((host.strip("[]"), int(port)), probe.timeout.seconds):
                pass
        else:
            # Imported here: httpx (with what it pulls in) is about 9 MiB the idle agent
            # would otherwise keep for personas that have no HTTP probe.
            import httpx

            if self._http is None:
                self._http = httpx.Client(follow_redirects=False, trust_env=False)
            try:
                self._http.get(probe.http or "", timeout=probe.timeout.seconds)
            except httpx.HTTPError as exc:
                raise OSError(str(exc) or type(exc).__name__) from exc
        return (time.perf_counter() - start) * 1000.0

    def close(self) -> None:
        if self._http is not None:
            self._http.close()


def established_remote_ports(proc: str = "/proc/net") -> Iterator[int]:
    """The remote port of every established TCP connection (IPv4 and IPv6), from the
    kernel's socket tables: psutil's ``net_connections`` also maps each socket to its
    process by reading every process's descriptors, ten times the cost, for nothing we use.
    At most :data:`MAX_SOCKETS` per table are looked at."""
    for table in ("tcp", "tcp6"):
        try:
            fh = open(f"{proc}/{table}", "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            continue  # no IPv6
        with fh:
            fh.readline()  # the header
            for i, line in enumerate(fh):
                if i >= MAX_SOCKETS:
                    break
                fields = line.split(None, 4)
                # sl local_address rem_address st ...; state 01 is ESTABLISHED
                if len(fields) > 3 and fields[3] == b"01":
                    yield int(fields[2].rpartition(b":")[2], 16)


class NetworkTrafficCollector(Collector):
    domain = "network_traffic"

    def __init__(self, persona: Persona, root: Path) -> None:
        self._prev: dict[str, tuple[int, int]] = {}

    def collect(self, sample: Sample) -> None:
        m = sample.reading.metrics
        now = {
            nic: (c.bytes_recv, c.bytes_sent)
            for nic, c in psutil.net_io_counters(pernic=True).items()
        }
        for nic, (rx, tx) in now.items():
            before = self._prev.get(nic)
            if before is not None:
                sample.put_rate(f"iface_rx_bps:{nic}", max(0, rx - before[0]), per=1.0)
                sample.put_rate(f"iface_tx_bps:{nic}", max(0, tx - before[1]), per=1.0)
        self._prev = now
        total = 0
        by_port: dict[int, int] = {}
        for port in established_remote_ports():
            total += 1
            if port < EPHEMERAL_FROM:
                by_port[port] = by_port.get(port, 0) + 1
        m["connections_total"] = total
        for port, n in by_port.items():
            m[f"connections:{port}"] = n


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_stats(proc: str = "/proc") -> Iterator[tuple[int, str, float]]:
    """``(pid, name, CPU seconds used)`` of every process, from ``/proc/PID/stat``: one read
    per process, where psutil makes three (and a fourth for a 15-character name)."""
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            fd = os.open(f"{proc}/{entry.name}/stat", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue  # it exited
        try:
            raw = os.read(fd, 4096)
        except OSError:
            continue
        finally:
            os.close(fd)
        # pid (comm) state ppid ... utime stime: comm may hold spaces and parentheses.
        start, end = raw.find(b"("), raw.rfind(b")")
        rest = raw[end + 2 :].split()
        if start < 0 or len(rest) < 13:
            continue
        used = (int(rest[11]) + int(rest[12])) / _TICK
        yield int(entry.name), raw[start + 1 : end].decode("utf-8", "replace"), used


class ProcessesCollector(Collector):
    domain = "processes"

    def __init__(self, persona: Persona, root: Path) -> None:
        self.names = persona.telemetry.processes
        self._cpu: dict[int, float] = {}

    def collect(self, sample: Sample) -> None:
        m = sample.reading.metrics
        count = 0
        seen: set[str] = set()
        cpu: dict[int, float] = {}
        top = 0.0
        for pid, name, used in process_stats():
            count += 1
            seen.add(name)
            cpu[pid] = used
            before = self._cpu.get(pid)
            if before is not None and sample.elapsed and used >= before:
                top = max(top, 100.0 * (used - before) / sample.elapsed)
        m["process_count"] = count
        if self._cpu and sample.elapsed:
            m["top_cpu_percent"] = top
        self._cpu = cpu
        for wanted in self.names:
            # The kernel keeps 15 characters of a process name.
            up = wanted in seen or (len(wanted) > 15 and wanted[:15] in seen)
            m[f"process_up:{wanted}"] = 1.0 if up else 0.0
