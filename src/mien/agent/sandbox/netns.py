"""Network namespaces for sandboxes that may reach an egress allow-list.

A lease with ``access_controls.network.egress`` gets a named namespace
(``/run/netns/mien-<id>``) joined to the host by a veth pair on a private /30
(10.213.0.0/16); inside, nftables drops every outgoing packet except loopback, replies,
and TCP to the listed ``host:port`` (names resolved once, on the host, at provision time,
and written to the sandbox's ``/etc/hosts``), and ``tc`` (a token bucket) caps the rate
at ``network_bandwidth``. Forwarding or NAT beyond the host side of the veth is the
host's own routing. A lease without egress gets no namespace of this kind: bubblewrap
gives it an empty one (loopback only).

Used by the ``local`` driver; the ``podman`` driver uses podman networks instead.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import subprocess
from pathlib import Path

from mien.agent.sandbox.base import Endpoint, SandboxError

NETNS_DIR = Path("/run/netns")
_NET_BASE = int(ipaddress.IPv4Address("10.213.0.0"))


def name_for(lease_id: str) -> str:
    return "mien-" + hashlib.sha256(lease_id.encode()).hexdigest()[:10]


def _ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise SandboxError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _in_ns(ns: str, argv: list[str], stdin: str | None = None) -> None:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        raise SandboxError(f"{argv[0]} in {ns}: {done.stderr.strip()}")


def resolve(endpoints: tuple[Endpoint, ...]) -> dict[str, list[str]]:
    """Each endpoint's host → its IPv4 addresses (raises when a name does not resolve)."""
    out: dict[str, list[str]] = {}
    for ep in endpoints:
        try:
            infos = socket.getaddrinfo(ep.host, ep.port, socket.AF_INET, socket.SOCK_STREAM)
        except OSError as exc:
            raise SandboxError(f"access_controls.network.egress: {ep}: {exc}") from None
        out[ep.host] = sorted({str(info[4][0]) for info in infos})
    return out


def _subnet(lease_id: str) -> tuple[str, str]:
    used = _ip("-o", "-4", "addr", "show")
    index = int(hashlib.sha256(lease_id.encode()).hexdigest(), 16) % 16384
    for step in range(16384):
        base = _NET_BASE + ((index + step) % 16384) * 4
        host, inside = ipaddress.IPv4Address(base + 1), ipaddress.IPv4Address(base + 2)
        if f" {host}/" not in used:
            return str(host), str(inside)
    raise SandboxError("no free address for the sandbox's network in 10.213.0.0/16")


def create(
    lease_id: str,
    egress: tuple[Endpoint, ...],
    addresses: dict[str, list[str]],
    bandwidth_bps: int | None,
) -> dict[str, str]:
    """The namespace, veth and rules; returns what :func:`destroy` needs."""
    ns = name_for(lease_id)
    tag = ns.removeprefix("mien-")
    host_if, ns_if = f"mh{tag}"[:15], f"ms{tag}"[:15]
    made = {"netns": ns, "host_if": host_if}
    try:
        _ip("netns", "add", ns)
        host_ip, ns_ip = _subnet(lease_id)
        made["host_ip"], made["ns_ip"] = host_ip, ns_ip
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", ns)
        _ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        _ip("-n", ns, "link", "set", ns_if, "up")
        _ip("-n", ns, "route", "add", "default", "via", host_ip)
        _in_ns(ns, ["nft", "-f", "-"], stdin=ruleset(egress, addresses))
        if bandwidth_bps:
            rate = max(8000, bandwidth_bps)
            burst = max(1600, rate // 8 // 100)  # ~10 ms worth, at least one packet
            _in_ns(
                ns,
                [
                    "tc",
                    "qdisc",
                    "add",
                    "dev",
                    ns_if,
                    "root",
                    "tbf",
                    "rate",
                    f"{rate}bit",
                    "burst",
                    str(burst),
                    "latency",
                    "50ms",
                ],
            )
    except BaseException:
        destroy(made)
        raise
    return made


def ruleset(egress: tuple[Endpoint, ...], addresses: dict[str, list[str]]) -> str:
    """nftables: outgoing traffic only to the allow-list (TCP), loopback and replies."""
    allow = []
    for ep in egress:
        for addr in addresses.get(ep.host, []):
            allow.append(f"    ip daddr {addr} tcp dport {ep.port} accept")
    return "\n".join(
        [
            "table inet mien_sandbox {",
            "  chain out {",
            "    type filter hook output priority 0; policy drop;",
            '    oifname "lo" accept',
            "    ct state established,related accept",
            *allow,
            "  }",
            "  chain in {",
            "    type filter hook input priority 0; policy drop;",
            '    iifname "lo" accept',
            "    ct state established,related accept",
            "  }",
            "}",
            "",
        ]
    )


def hosts_file(addresses: dict[str, list[str]]) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost"]
    for host, addrs in sorted(addresses.items()):
        if host.replace(".", "").isdigit():
            continue
        lines.extend(f"{addr}\t{host}" for addr in addrs)
    return "\n".join(lines) + "\n"


def destroy(made: dict[str, str]) -> None:
    """Idempotent: delete the namespace (its veth end goes with it) and the host end."""
    ns, host_if = made.get("netns"), made.get("host_if")
    if host_if:
        _ip("link", "del", host_if, check=False)
    if ns and (NETNS_DIR / ns).exists():
        _ip("netns", "del", ns, check=False)
