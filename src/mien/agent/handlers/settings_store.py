"""Every persona setting no handler gives effect to → ``/etc/mien/settings.json``.

A setting is *claimed* when a registered handler lists it (or a parent of it) in its
``settings``; see :func:`mien.agent.registry.claimed_settings`. The maps ``os_settings``,
``application_settings`` and ``behavioral_settings`` are judged key by key, other fields
as a whole; an ``application_configuration`` entry without a ``path`` is never a file, so
it is stored. Each stored key gets a ``stored`` note — it is kept on the machine where
programs and scripts can read it, and never reported as applied. Identity fields and the
fields the engine (hook scripts) and the command router handle are not settings here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from mien.agent import registry
from mien.agent.handlers.base import (
    BaseHandler,
    Context,
    FileSpec,
    FileState,
    HandlerPlan,
    Note,
)
from mien.protocol.outcomes import Outcome
from mien.spec.canonical import canonical
from mien.spec.keys import format_key
from mien.spec.models import Persona

PATH = "/etc/mien/settings.json"
NOT_SETTINGS = frozenset(
    {
        "name",
        "display_name",
        "description",
        "extends",
        "default_persona",
        "labels",
        "locked",
        "pre_activation_script",  # run by the engine around every apply
        "post_activation_script",
        "command_overrides",  # the command router's table
        "restricted_commands",
    }
)
PER_KEY = frozenset({"os_settings", "application_settings", "behavioral_settings"})


def is_claimed(key: str, claimed: Iterable[str]) -> bool:
    return any(key == c or key.startswith(c + ".") for c in claimed)


def stored_not_acted() -> tuple[str, ...]:
    """Persona fields no installed handler acts on: mien validates them, stores them in
    ``/etc/mien/settings.json`` and reports them as "stored, not applied". README, the
    language reference and ``mien --help`` name exactly these (a test holds them to it).

    Top-level fields only. Besides these, a key of ``os_settings``,
    ``application_settings`` or ``behavioral_settings`` that no handler knows, and an
    ``application_configuration`` entry without a ``path``, are stored the same way."""
    claimed = registry.claimed_settings()
    out = []
    for field, info in Persona.model_fields.items():
        if field in NOT_SETTINGS or is_claimed(field, claimed):
            continue
        if field in PER_KEY:
            keys = getattr(info.annotation, "model_fields", {})
            out += [f"{field}.{k}" for k in keys if not is_claimed(f"{field}.{k}", claimed)]
            continue
        out.append(field)
    return tuple(out)


def unclaimed(data: Mapping[str, Any], claimed: Iterable[str]) -> dict[str, Any]:
    """The canonical persona's settings that no handler claims, by key path."""
    claimed = frozenset(claimed)
    out: dict[str, Any] = {}
    for field, value in data.items():
        if field in NOT_SETTINGS:
            continue
        if field in PER_KEY and isinstance(value, Mapping):
            for key, item in value.items():
                path = format_key((field, key))
                if not is_claimed(path, claimed):
                    out[path] = item
        elif field == "application_configuration" and isinstance(value, Mapping):
            for app, cfg in value.items():
                path = format_key((field, app))
                has_file = isinstance(cfg, Mapping) and cfg.get("path")
                if not (has_file and is_claimed(path, claimed)):
                    out[path] = cfg
        elif not is_claimed(field, claimed):
            out[field] = value
    return out


def note_for(key: str) -> str:
    if key.startswith("application_configuration."):
        return f"stored in {PATH}, not applied: no path, so no file to write"
    return f"stored in {PATH}, not applied: no handler"


class SettingsStoreHandler(BaseHandler):
    name: ClassVar[str] = "settings_store"
    settings: ClassVar[tuple[str, ...]] = ()
    order: ClassVar[int] = 90

    def plan(self, ctx: Context, persona: Persona) -> HandlerPlan:
        stored = unclaimed(canonical(persona), registry.claimed_settings())
        document = {
            "managed_by": "mien",
            "persona": ctx.persona_name,
            "note": "Persona settings no handler applies: kept here for programs and scripts.",
            "settings": stored,
        }
        body = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        return HandlerPlan(
            files=[
                FileSpec(
                    PATH,
                    FileState(body.encode(), 0o644, 0, 0),
                    {"keys": sorted(stored)},
                    f"{len(stored)} stored setting(s)",
                )
            ],
            notes=[Note(key, Outcome.STORED, note_for(key)) for key in stored],
        )
