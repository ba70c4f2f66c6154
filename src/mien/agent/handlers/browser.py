"""``application_settings.browser_extensions`` → the browsers' managed (enterprise) policies.

* Chromium ``/etc/chromium/policies/managed/mien.json`` and Google Chrome
  ``/etc/opt/chrome/policies/managed/mien.json``: ``ExtensionInstallForcelist`` entries
  ``<id>;https://clients2.google.com/service/update2/crx`` (mien's own files);
* Firefox ``/etc/firefox/policies/policies.json``: ``policies.ExtensionSettings.<add-on
  id>`` = ``force_installed`` from addons.mozilla.org, merged into an existing file (other
  policies are kept, and put back as they were when the persona stops managing them).

Names are resolved by :mod:`.extension_ids`; a 32-letter a–p id is a Chrome Web Store id.
An entry nothing knows is reported as an ``error`` note and not applied. The policy files
are written whether or not the browser is installed (a browser installed later picks them
up); notes say which browsers are installed and which are not. The browser downloads the
extensions itself when it starts with network access.
"""

from __future__ import annotations

import json
from typing import ClassVar

from mien.agent.handlers import shared_files
from mien.agent.handlers.base import (
    BaseHandler,
    Context,
    FileSpec,
    FileState,
    HandlerPlan,
    Note,
)
from mien.agent.handlers.extension_ids import BrowserExtension, browser_extension
from mien.protocol.outcomes import Outcome, Reason
from mien.spec.models import Persona

SETTING = "application_settings.browser_extensions"
CHROMIUM = "/etc/chromium/policies/managed/mien.json"
CHROME = "/etc/opt/chrome/policies/managed/mien.json"
FIREFOX = "/etc/firefox/policies/policies.json"
CHROME_UPDATE_URL = "https://clients2.google.com/service/update2/crx"
AMO_URL = "https://addons.mozilla.org/firefox/downloads/latest/{slug}/latest.xpi"

BROWSERS: dict[str, tuple[str, tuple[str, ...]]] = {
    CHROMIUM: ("chromium", ("chromium", "chromium-browser")),
    CHROME: ("google chrome", ("google-chrome", "google-chrome-stable")),
    FIREFOX: ("firefox", ("firefox", "firefox-esr")),
}


def resolve(entries: list[str]) -> tuple[list[BrowserExtension], list[str]]:
    """Known extensions (in order, without duplicates) and the entries nothing knows."""
    known: list[BrowserExtension] = []
    unknown: list[str] = []
    for entry in entries:
        ext = browser_extension(entry)
        if ext is None:
            unknown.append(entry)
        elif ext not in known:
            known.append(ext)
    return known, unknown


def chromium_policy(extensions: list[BrowserExtension]) -> dict[str, list[str]]:
    return {
        "ExtensionInstallForcelist": [
            f"{e.chrome};{CHROME_UPDATE_URL}" for e in extensions if e.chrome is not None
        ]
    }


def firefox_settings(extensions: list[BrowserExtension]) -> dict[tuple[str, ...], dict[str, str]]:
    """The ``policies.ExtensionSettings`` entries, as key paths for a merge."""
    return {
        ("policies", "ExtensionSettings", e.firefox[0]): {
            "installation_mode": "force_installed",
            "install_url": AMO_URL.format(slug=e.firefox[1]),
        }
        for e in extensions
        if e.firefox is not None
    }


class BrowserExtensionsHandler(BaseHandler):
    name: ClassVar[str] = "browser_extensions"
    settings: ClassVar[tuple[str, ...]] = (SETTING,)
    order: ClassVar[int] = 50

    def plan(self, ctx: Context, persona: Persona) -> HandlerPlan:
        result = HandlerPlan()
        entries = persona.application_settings.browser_extensions or []
        known, unknown = resolve(entries)
        for entry in unknown:
            result.notes.append(
                Note(
                    SETTING,
                    Outcome.FAILED,
                    f"{entry!r} is not a browser extension mien knows: not applied (give its "
                    "Chrome Web Store id, 32 letters a-p)",
                )
            )
        chrome = [e for e in known if e.chrome]
        firefox = firefox_settings(known)
        for e in known:
            if e.firefox is None:
                result.notes.append(
                    Note(
                        SETTING,
                        Outcome.FAILED,
                        f"{e.title}: no Firefox add-on known, not applied to Firefox",
                    )
                )
        if chrome:
            body = (json.dumps(chromium_policy(chrome), indent=2) + "\n").encode()
            for path in (CHROMIUM, CHROME):
                result.files.append(
                    FileSpec(
                        path,
                        FileState(body, 0o644, 0, 0),
                        {},
                        f"{BROWSERS[path][0]}: force-install {len(chrome)} extension(s)",
                        SETTING,
                    )
                )
                self._installed_note(ctx, result, path, len(chrome))
        record = ctx.previous(self.name).get(FIREFOX)
        if firefox:
            result.files.append(
                shared_files.merged(
                    ctx,
                    FIREFOX,
                    "json",
                    firefox,
                    record,
                    what="Firefox policies",
                    header=None,
                    summary=f"firefox: force-install {len(firefox)} add-on(s)",
                    setting=SETTING,
                )
            )
            self._installed_note(ctx, result, FIREFOX, len(firefox))
        elif record is not None:
            spec = shared_files.released(ctx, FIREFOX, record, what="Firefox policies")
            if spec is not None:
                result.files.append(spec)
        return result

    @staticmethod
    def _installed_note(ctx: Context, result: HandlerPlan, path: str, count: int) -> None:
        title, commands = BROWSERS[path]
        if any(ctx.which(c) for c in commands):
            result.notes.append(
                Note(
                    SETTING,
                    Outcome.APPLIED,
                    f"{title}: {count} extension(s) force-installed by policy {path} "
                    "(downloaded when the browser starts)",
                )
            )
        else:
            result.notes.append(
                Note(
                    SETTING,
                    Outcome.PENDING,
                    f"{title} not installed: policy written to {path}, takes effect when installed",
                    reason=Reason.NOT_INSTALLED,
                )
            )
