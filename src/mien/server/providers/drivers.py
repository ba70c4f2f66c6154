"""The provider drivers by name, and building one from a stored declaration. Third-party
drivers register in :data:`FACTORIES` the same way the built-in ``webhook`` and
``libvirt`` do. Used by the provider queue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mien.server.providers.base import Provider
from mien.server.providers.declaration import check_config
from mien.server.providers.virt import LibvirtProvider
from mien.server.providers.webhook import WebhookProvider


def _webhook(name: str, config: dict[str, Any], secret: str | None) -> Provider:
    if not secret:
        raise ValueError(f"provider {name!r}: a webhook needs a secret to sign with")
    return WebhookProvider(name, config["url"], secret, float(config["timeout"]))


def _libvirt(name: str, config: dict[str, Any], secret: str | None) -> Provider:
    return LibvirtProvider(name, config["uri"], config["domains"], float(config["timeout"]))


FACTORIES: dict[str, Callable[[str, dict[str, Any], str | None], Provider]] = {
    "webhook": _webhook,
    "libvirt": _libvirt,
}


def build(name: str, driver: str, config: dict[str, Any], secret: str | None) -> Provider:
    """A driver for a declaration; ValueError says what is wrong with it."""
    factory = FACTORIES.get(driver)
    if factory is None:
        raise ValueError(f"provider {name!r}: unknown driver {driver!r}")
    return factory(name, check_config(driver, config), secret)
