"""Turn the other spellings of a persona into the canonical one, before validation.

The concept documents write personas several ways, and each document's own example must load as
it stands:

* ``persona_developer.yml`` wraps the persona in one key: ``persona_developer: {...}`` (name ``developer``);
* ``marketing-report.json`` names it with ``persona_id`` and ``persona_name``, and lists applications as
  plain package names;
* ``HighTraffic.yaml`` (a PDL) uses CamelCase keys (``BaseConfiguration``, ``SoftwareStack``,
  ``TelemetryTriggers``, ``ExternalDataSources``, ``AutomatedResponses``) and writes values
  and rules in words (``Memory: 32 GB``, ``Nginx (latest version)``,
  ``CPU Load > 80% for 5 minutes``), read by :mod:`mien.spec.phrases`.

Only structural keys are respelled; user keys (environment variable names, labels,
configuration values, command names) are never touched. Every rename is recorded in the
document's :class:`~mien.spec.source.SourceMap` so errors still point at what was written.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from mien.spec import phrases
from mien.spec.errors import FieldPath, Problem
from mien.spec.models import TOP_LEVEL_FIELDS
from mien.spec.source import SourceMap

TOP_SYNONYMS = {
    "base_configuration": "resource_requirements",
    "software_stack": "required_applications",
    "telemetry_triggers": "adaptation_rules",
    "persona_id": "name",
    "persona_name": "display_name",
}
RESOURCE_SYNONYMS = {
    "cpus": "cpu",
    "cores": "cpu",
    "vcpu": "cpu",
    "vcpus": "cpu",
    "ram": "memory",
    "disk": "storage",
    "network": "network_bandwidth",
    "bandwidth": "network_bandwidth",
}
RULE_SYNONYMS = {"condition": "when", "if": "when", "action": "then", "actions": "then"}
SOURCE_SYNONYMS = {"frequency": "every", "interval": "every", "action": "then", "actions": "then"}
DOMAIN_SYNONYMS = {
    "system metrics": "metrics",
    "network traffic": "network_traffic",
    "system logs": "system_logs",
    "logs": "system_logs",
    "application api calls": "api_calls",
    "api calls": "api_calls",
    "process activity": "processes",
    "file access": "file_access",
    "authentication events": "auth_events",
}

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_PACKAGE = re.compile(
    r"^\s*(?:(?P<manager>apt|pip|npm|snap|flatpak|cargo):)?(?P<name>[A-Za-z0-9@][A-Za-z0-9@._+/-]*?)"
    r"\s*(?:(?P<op>==|>=|<=|~=|!=|=|@)\s*(?P<version>[^\s()]+))?\s*(?:\((?P<note>[^)]*)\))?\s*$"
)


def snake(key: str) -> str:
    """``NetworkBandwidth`` → ``network_bandwidth``; ``CPU`` → ``cpu``; ``URL`` → ``url``."""
    if key.isupper():
        return key.lower()
    if key.islower() and " " not in key and "-" not in key:
        return key  # already snake_case (the common case)
    return re.sub(r"[\s-]+", "_", _CAMEL.sub("_", key)).lower()


class Normaliser:
    """Rewrites one parsed document in place of its canonical form, collecting problems."""

    def __init__(self, where: SourceMap, stem: str, *, overlay: bool = False) -> None:
        self.where = where
        self.stem = stem
        self.overlay = overlay
        self.problems: list[Problem] = []

    def error(self, path: FieldPath, message: str, *, key: bool = False) -> None:
        self.problems.append(self.where.problem(path, message, key=key))

    def run(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            kind = "a list" if isinstance(data, list) else f"the value {data!r}"
            self.error((), f"a persona is a mapping of fields, but this document is {kind}")
            return {}
        data, prefix, wrapped_name = self._unwrap(data)
        out: dict[str, Any] = {}
        for raw_key, value in data.items():
            key = TOP_SYNONYMS.get(snake(raw_key), snake(raw_key))
            original = (*prefix, raw_key)
            if key not in TOP_LEVEL_FIELDS:
                hint = difflib.get_close_matches(key, [*TOP_LEVEL_FIELDS, *TOP_SYNONYMS], 1)
                suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
                self.where.alias((raw_key,), original)
                self.error((raw_key,), f"unknown field{suggestion}", key=True)
                continue
            if key in out:
                self.where.alias((key,), original)
                self.error((key,), f"{raw_key!r} sets {key!r} a second time", key=True)
                continue
            self.where.alias((key,), original)
            out[key] = self._field(key, value)
        if "display_name" in out and "name" not in out and isinstance(out["display_name"], str):
            out["name"] = phrases.slug(out["display_name"])
        if "name" not in out and not self.overlay:
            out["name"] = wrapped_name or _name_from_stem(self.stem)
        return out

    def _unwrap(self, data: dict[str, Any]) -> tuple[dict[str, Any], FieldPath, str | None]:
        if len(data) == 1:
            ((key, value),) = data.items()
            known = TOP_SYNONYMS.get(snake(key), snake(key)) in TOP_LEVEL_FIELDS
            # Only a wrapper if what it wraps is a persona: `os_setings: {theme: dark}` is a
            # misspelt field, not a persona called "os_setings".
            inner = value if isinstance(value, dict) else {}
            inner_keys = {TOP_SYNONYMS.get(snake(k), snake(k)) for k in inner}
            if not known and inner_keys & set(TOP_LEVEL_FIELDS):
                name = re.sub(r"^persona[_-]", "", key)
                return value, (key,), name
        return data, (), None

    # --- per-field forms ---------------------------------------------------------------

    def _field(self, key: str, value: Any) -> Any:
        handler = getattr(self, f"_f_{key}", None)
        return handler(value) if handler else value

    def _rekey(self, path: FieldPath, value: Any, synonyms: dict[str, str]) -> Any:
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for raw_key, item in value.items():
            key = synonyms.get(snake(raw_key), snake(raw_key))
            self.where.alias((*path, key), (*path, raw_key))
            if key in out:
                self.error((*path, key), f"{raw_key!r} sets {key!r} a second time", key=True)
                continue
            out[key] = item
        return out

    def _f_resource_requirements(self, value: Any) -> Any:
        return self._rekey(("resource_requirements",), value, RESOURCE_SYNONYMS)

    def _f_access_controls(self, value: Any) -> Any:
        return self._rekey(("access_controls",), value, {})

    def _f_required_applications(self, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        out = []
        for i, item in enumerate(value):
            path: FieldPath = ("required_applications", i)
            if isinstance(item, str):
                parsed = _package(item)
                if parsed is None:
                    self.error(
                        path,
                        f"cannot read package {item!r}: write a package name, optionally "
                        "'manager:name' and a version ('pip:pandas>=2.2', 'nginx (latest)')",
                    )
                    continue
                out.append(parsed)
            else:
                out.append(self._rekey(path, item, {}))
        return out

    def _f_adaptation_rules(self, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [self._rule(("adaptation_rules", i), item) for i, item in enumerate(value)]

    def _rule(self, path: FieldPath, item: Any) -> Any:
        if isinstance(item, str):
            try:
                return phrases.rule(item)
            except phrases.PhraseError as exc:
                self.error(path, str(exc))
                return {"when": "true", "then": [{"respond": "invalid"}]}
        item = self._rekey(path, item, RULE_SYNONYMS)
        if not isinstance(item, dict):
            return item
        when = item.get("when")
        if isinstance(when, str) and not _looks_like_cel(when):
            try:
                cel, duration = phrases.condition(when)
            except phrases.PhraseError as exc:
                self.error((*path, "when"), str(exc))
                item["when"] = "true"  # reported once, here, not again as a CEL error
            else:
                item["when"] = cel
                if duration and "for" not in item:
                    item["for"] = duration
                    self.where.alias((*path, "for"), (*path, "when"))
                if "name" not in item:
                    item["name"] = phrases.slug(when)
        clear = item.get("clear_when")
        if isinstance(clear, str) and not _looks_like_cel(clear):
            try:
                item["clear_when"], clear_for = phrases.condition(clear)
            except phrases.PhraseError as exc:
                self.error((*path, "clear_when"), str(exc))
                item["clear_when"] = "false"
            else:
                if clear_for and "clear_for" not in item:
                    item["clear_for"] = clear_for
                    self.where.alias((*path, "clear_for"), (*path, "clear_when"))
        item["then"] = self._actions((*path, "then"), item.get("then"))
        return item

    def _actions(self, path: FieldPath, value: Any) -> Any:
        if isinstance(value, str):
            return phrases.actions(value)
        if isinstance(value, dict):
            return [value]
        return value

    def _f_external_data_sources(self, value: Any) -> Any:
        if isinstance(value, dict):  # {name: {url: ...}} form
            value = [{"name": k, **v} if isinstance(v, dict) else v for k, v in value.items()]
        if not isinstance(value, list):
            return value
        out = []
        for i, item in enumerate(value):
            path: FieldPath = ("external_data_sources", i)
            item = self._rekey(path, item, SOURCE_SYNONYMS)
            if isinstance(item, dict):
                if "then" in item:
                    item["then"] = self._actions((*path, "then"), item["then"])
                if "name" not in item and isinstance(item.get("url"), str):
                    item["name"] = phrases.slug(re.sub(r"^https?://", "", item["url"]))[:40]
            out.append(item)
        return out

    def _f_automated_responses(self, value: Any) -> Any:
        if isinstance(value, list):  # [{name: x, then: [...]}] form
            out: dict[str, Any] = {}
            for i, item in enumerate(value):
                if isinstance(item, dict) and "name" in item:
                    body = self._rekey(("automated_responses", i), item, RULE_SYNONYMS)
                    self.where.alias(
                        ("automated_responses", body["name"]), ("automated_responses", i)
                    )
                    out[str(body["name"])] = self._actions((), body.get("then"))
                else:
                    self.error(("automated_responses", i), "each response needs a 'name'")
            return out
        if isinstance(value, dict):
            return {k: self._actions(("automated_responses", k), v) for k, v in value.items()}
        return value

    def _f_trust_levels(self, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out = self._rekey(("trust_levels",), value, {})
        return {k: v.lower() if isinstance(v, str) else v for k, v in out.items()}

    def _f_learning_domains(self, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [
            DOMAIN_SYNONYMS.get(" ".join(v.lower().split()), snake(v)) if isinstance(v, str) else v
            for v in value
        ]

    def _f_priority_metrics(self, value: Any) -> Any:
        if isinstance(value, list):  # [{metric: performance, weight: 0.6}] form
            out: dict[str, Any] = {}
            for i, item in enumerate(value):
                if isinstance(item, dict) and len(item) == 2 and "weight" in item:
                    name = next(v for k, v in item.items() if k != "weight")
                    self.where.alias(
                        ("priority_metrics", snake(str(name))), ("priority_metrics", i)
                    )
                    out[snake(str(name))] = item["weight"]
                else:
                    self.error(
                        ("priority_metrics", i),
                        "write weights as 'metric: weight' or a list of {metric, weight}",
                    )
            return out
        return self._rekey(("priority_metrics",), value, {})


def _looks_like_cel(text: str) -> bool:
    return bool(
        re.search(r"\b(metrics|baseline|anomaly|priority|trust|events|persona|data)\s*[.\[]", text)
        or re.search(r"\bnow\b\s*[<>=!]", text)
        or re.search(r"&&|\|\||\bhas\(", text)
        or text.strip() in ("true", "false")
    )


def _package(text: str) -> dict[str, Any] | None:
    m = _PACKAGE.match(text)
    if not m:
        return None
    out: dict[str, Any] = {
        "name": m.group("name").lower() if not m.group("manager") else m.group("name")
    }
    if m.group("manager"):
        out["manager"] = m.group("manager")
    version = m.group("version")
    if version:
        op = m.group("op")
        out["version"] = version if op in ("=", "==", "@") else f"{op}{version}"
    note = (m.group("note") or "").strip()
    if note:
        low = note.lower()
        if low in ("latest", "latest version", "newest", "current"):
            out.setdefault("version", "latest")
        elif re.match(r"^(version\s+)?v?\d[\w.]*$", low):
            out.setdefault("version", re.sub(r"^(version\s+)?v?", "", low))
        else:
            out["purpose"] = note
    return out


def _name_from_stem(stem: str) -> str:
    name = re.sub(r"^persona[_-]", "", stem)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")
    return name[:63] or "persona"
