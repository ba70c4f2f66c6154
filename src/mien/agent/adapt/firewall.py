"""``firewall_block``: addresses dropped by nftables, each for a while.

The agent owns one table, ``inet mien``: two sets (``blocked4`` of IPv4 and ``blocked6`` of
IPv6 addresses, with per-element timeouts, so a block ends by itself even if the agent is
gone) and a drop rule for each on input (source) and output (destination). Addresses come
from the action's ``addresses`` or from a data source's current copy (``from:
data.NAME``, a list of lines; the rules fill it in when the copy is there). Reverting deletes the change's addresses; when no
block is left, or on a persona switch, the table goes. nft runs in the agent's network
namespace (tests run the agent inside one they create). Used by
:mod:`mien.agent.adapt.executors`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from mien.agent.adapt.action_base import ActionFailed, Ctx, Done, have, param, run_program

TABLE = "inet mien"
DEFAULT_TIMEOUT = 3600  # seconds an address stays blocked when the action names no timeout
MAX_ADDRESSES = 65536

SKELETON = """\
table inet mien {
    set blocked4 { type ipv4_addr; flags interval, timeout; }
    set blocked6 { type ipv6_addr; flags interval, timeout; }
    chain input {
        type filter hook input priority filter; policy accept;
        ip saddr @blocked4 drop
        ip6 saddr @blocked6 drop
    }
    chain output {
        type filter hook output priority filter; policy accept;
        ip daddr @blocked4 drop
        ip6 daddr @blocked6 drop
    }
}
"""


def nft(*args: str, script: str | None = None) -> None:
    argv = ["nft", *args] if script is None else ["nft", "-f", "-"]
    if script is None:
        status, output = run_program(argv)
    else:
        import subprocess

        done = subprocess.run(argv, input=script.encode(), capture_output=True, check=False)
        status, output = (
            done.returncode,
            (done.stdout + done.stderr)[:4096].decode(errors="replace"),
        )
    if status != 0:
        raise ActionFailed(f"nft {' '.join(args) or '-f -'} exited {status}: {output.strip()}")


def table_exists() -> bool:
    status, _ = run_program(["nft", "list", "table", "inet", "mien"])
    return status == 0


def parse_addresses(values: Iterable[Any]) -> tuple[list[str], list[str], list[str]]:
    """IPv4 and IPv6 addresses (or networks) from ``values``; the rest, to report."""
    v4: list[str] = []
    v6: list[str] = []
    bad: list[str] = []
    for raw in values:
        text = str(raw).strip()
        if not text or text.startswith("#"):
            continue
        try:
            net = ipaddress.ip_network(text.split()[0], strict=False)
        except ValueError:
            bad.append(text[:80])
            continue
        (v4 if net.version == 4 else v6).append(str(net))
    return sorted(set(v4)), sorted(set(v6)), bad


def _wanted(ctx: Ctx, params: Mapping[str, Any]) -> list[Any]:
    given = params.get("addresses")
    if given is not None:
        return list(given) if isinstance(given, list) else [given]
    ref = str(param(params, "from"))
    name = ref.removeprefix("data.")
    data = ctx.data.get(name) if name != "data" else None
    if isinstance(data, Mapping):
        data = data.get("value", data.get("lines"))
    if not isinstance(data, list):
        raise ActionFailed(f"data source {name!r} has no list of addresses (yet)")
    return data


def _timeout(params: Mapping[str, Any]) -> int:
    from mien.spec.values import Duration

    raw = params.get("timeout", DEFAULT_TIMEOUT)
    try:
        seconds = raw.seconds if isinstance(raw, Duration) else Duration.parse(raw).seconds
    except ValueError as exc:
        raise ActionFailed(f"timeout: {exc}", retry=False) from None
    return max(1, int(seconds))


def _elements(addresses: list[str], timeout: int | None) -> str:
    suffix = f" timeout {timeout}s" if timeout else ""
    return ", ".join(f"{a}{suffix}" for a in addresses)


class FirewallBlock:
    """Add addresses to the ``inet mien`` sets for ``timeout`` (default one hour)."""

    reversible = True

    def apply(self, ctx: Ctx, params: Mapping[str, Any]) -> Done:
        if not have("nft"):
            raise ActionFailed("nft is not installed (install nftables)", retry=False)
        v4, v6, bad = parse_addresses(_wanted(ctx, params))
        if len(v4) + len(v6) > MAX_ADDRESSES:
            raise ActionFailed(
                f"{len(v4) + len(v6)} addresses: more than {MAX_ADDRESSES}", retry=False
            )
        timeout = _timeout(params)
        created = not table_exists()
        script = SKELETON if created else ""
        if v4:
            script += f"add element inet mien blocked4 {{ {_elements(v4, timeout)} }}\n"
        if v6:
            script += f"add element inet mien blocked6 {{ {_elements(v6, timeout)} }}\n"
        if script:
            try:
                nft(script=script)  # one batch: all or nothing
            except ActionFailed:
                if created and table_exists():
                    nft("delete", "table", "inet", "mien")
                raise
        note = f"; not addresses: {', '.join(bad[:5])}" if bad else ""
        return Done(
            "applied",
            f"blocked {len(v4) + len(v6)} address(es) for {timeout}s{note}",
            {"v4": v4, "v6": v6, "created": created},
        )

    def revert(self, ctx: Ctx, undo: Mapping[str, Any]) -> None:
        if not have("nft") or not table_exists():
            return
        from mien.agent.adapt.ledger import APPLIED

        others = [
            c
            for c in ctx.ledger.changes([APPLIED])
            if c.action == "firewall_block" and c.id != ctx.change_id
        ]
        if not others:
            nft("delete", "table", "inet", "mien")
            return
        keep = {a for c in others for a in [*c.undo.get("v4", []), *c.undo.get("v6", [])]}
        for name, mine in (("blocked4", undo.get("v4", [])), ("blocked6", undo.get("v6", []))):
            for address in [a for a in mine if a not in keep]:
                # An element that expired on its own is gone already: delete one at a time,
                # so one missing element does not keep the others.
                try:
                    nft("delete", "element", "inet", "mien", name, "{", address, "}")
                except ActionFailed:
                    continue


def remove_table() -> None:
    """Drop the whole table (a persona switch ends every block)."""
    if have("nft") and table_exists():
        nft("delete", "table", "inet", "mien")
