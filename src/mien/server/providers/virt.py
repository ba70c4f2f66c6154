"""The ``libvirt`` provider: sets the vCPUs and memory of the domain that runs an instance,
through libvirt-python, on the hypervisor its ``uri`` names (``qemu:///system`` on a KVM
host; ``test:///default`` is libvirt's own in-process test driver).

The domain is named like the instance unless the declaration's ``domains`` maps the
instance id to another name. A running persistent domain is changed live and in its
configuration (so a reboot keeps the size); an inactive one in its configuration. Within
the domain's maximum vCPUs and memory only: raising those needs the domain shut off, which
this driver does not do behind the operator's back. libvirt is a blocking C library, so
each call runs in a worker thread, one at a time per provider (one connection, kept open).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

from mien.server.providers.base import ProviderOutcome, ProviderRequest


def _libvirt() -> Any:
    """libvirt-python, imported on first use (it maps about 11 MiB of shared libraries into
    every server, most of which never has a libvirt provider), or ``None`` without it: an
    optional system library, and the driver then says so on every call."""
    try:
        import libvirt
    except ImportError:  # pragma: no cover - depends on the machine
        return None
    return libvirt


# libvirt errors that mean "this request can never work": no such domain, bad argument.
_FINAL = ("VIR_ERR_NO_DOMAIN", "VIR_ERR_INVALID_ARG", "VIR_ERR_OPERATION_INVALID")


def target(value: Any, current: int) -> int:
    """A whole number, or a relative step (``"+1"``, ``"-512"``) applied to ``current``."""
    if isinstance(value, str) and value.strip()[:1] in "+-":
        return current + int(float(value.strip()))
    return int(value)


class LibvirtProvider:
    def __init__(
        self, name: str, uri: str, domains: Mapping[str, str], timeout: float = 30.0
    ) -> None:
        self.name = name
        self.uri = uri
        self.domains = dict(domains)
        self.timeout = timeout
        self._conn: Any = None
        self._lock = threading.Lock()

    def domain_name(self, instance_id: str) -> str:
        return self.domains.get(instance_id, instance_id)

    def connection(self) -> Any:
        """The open connection (opened, or reopened after it died, on first use)."""
        libvirt = _libvirt()
        if libvirt is None:
            raise RuntimeError("libvirt-python is not installed on the server")
        if self._conn is None or not self._conn.isAlive():
            libvirt.registerErrorHandler(lambda *_: None, None)  # errors are raised, not printed
            self._conn = libvirt.open(self.uri)
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    async def call(self, request: ProviderRequest) -> ProviderOutcome:
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self._locked, request), timeout=self.timeout
            )
        except TimeoutError:
            return ProviderOutcome(False, f"{self.uri}: no answer in {self.timeout:g} s", True)

    def _locked(self, request: ProviderRequest) -> ProviderOutcome:
        with self._lock:
            return self._resize(request)

    def _resize(self, request: ProviderRequest) -> ProviderOutcome:
        libvirt = _libvirt()
        if libvirt is None:
            return ProviderOutcome(False, "libvirt-python is not installed on the server")
        if request.kind != "resize":
            return ProviderOutcome(
                False, f"the libvirt provider only resizes (not {request.kind!r})"
            )
        name = self.domain_name(request.instance_id)
        try:
            conn = self.connection()
        except libvirt.libvirtError as exc:
            return ProviderOutcome(False, f"{self.uri}: {exc}", retry=True)
        try:
            dom = conn.lookupByName(name)
            # One flag per call: some drivers refuse LIVE and CONFIG together.
            flags = []
            if dom.isActive():
                flags.append(libvirt.VIR_DOMAIN_AFFECT_LIVE)
            if dom.isPersistent():
                flags.append(libvirt.VIR_DOMAIN_AFFECT_CONFIG)
            _state, _max_kib, mem_kib, cpus, _ = dom.info()
            params = request.params
            if params.get("cpus") is not None:
                wanted = target(params["cpus"], int(cpus))
                if wanted < 1:
                    return ProviderOutcome(False, f"domain {name}: {wanted} vCPUs is not a size")
                if wanted != cpus:
                    for flag in flags:
                        dom.setVcpusFlags(wanted, flag)
            if params.get("memory_mib") is not None:
                wanted = target(params["memory_mib"], int(mem_kib) // 1024)
                if wanted < 1:
                    return ProviderOutcome(False, f"domain {name}: {wanted} MiB is not a size")
                if wanted * 1024 != mem_kib:
                    for flag in flags:
                        dom.setMemoryFlags(wanted * 1024, flag)
            _state, _max_kib, mem_kib, cpus, _ = dom.info()
        except libvirt.libvirtError as exc:
            code = exc.get_error_code()
            final = any(code == getattr(libvirt, n, None) for n in _FINAL)
            return ProviderOutcome(False, f"domain {name} on {self.uri}: {exc}", retry=not final)
        size = {"domain": name, "cpus": int(cpus), "memory_mib": int(mem_kib) // 1024}
        return ProviderOutcome(
            True, f"domain {name}: {size['cpus']} vCPUs, {size['memory_mib']} MiB", result=size
        )
