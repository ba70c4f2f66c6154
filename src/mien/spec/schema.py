"""The JSON Schema of the persona language, generated from the models, for editors and tools.

``mien schema`` prints it; an editor's YAML language server uses it to complete field names
and flag mistakes while a persona is being written. It describes the **canonical form**
(what ``mien render`` prints), so every rendered persona validates against it; the
other spellings (CamelCase keys, phrases in words) are read by mien but not described here.

Everything comes from :mod:`mien.spec.models` and :mod:`mien.spec.values`: model docstrings
become descriptions, value types contribute their own schema; this module only adds what
pydantic cannot know (a script may be written as a plain string, environment values may be
YAML numbers, the canonical spelling of typed defaults) and a description for each
top-level field.
"""

from __future__ import annotations

import inspect
from typing import Any

from mien.spec.frequency import Frequency
from mien.spec.models import Persona, Script
from mien.spec.values import Bandwidth, CpuCount, Duration, Size

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://mien.dev/schemas/persona.schema.json"

FIELD_DESCRIPTIONS: dict[str, str] = {
    "name": "Unique name of the persona (letters, digits, '.', '_', '-'); defaults to the "
    "file's stem.",
    "display_name": "Human-readable name, e.g. 'Marketing Report Creator' (also persona_name).",
    "description": "What the persona is for.",
    "extends": "Another persona (by name) this one builds on: its settings are the base, "
    "this document's win. Maps merge by key, lists replace, null deletes.",
    "default_persona": "Activate this persona on a machine that has no other "
    "Not inherited through extends.",
    "labels": "Free-form key/value labels (team, cost centre, region).",
    "locked": "Keys (dotted paths such as behavioral_settings.security_scan_frequency) that "
    "users on the machine may not customize. Accumulates through extends.",
    "os_settings": "Operating-system settings: theme, editor, terminal_shell, and any other "
    "key (stored and reported as not applied when no handler exists).",
    "application_settings": "Application settings: ide_extensions, browser_extensions, and "
    "any other key.",
    "behavioral_settings": "Behaviour: auto_update_frequency, security_scan_frequency, "
    "logging_level, and any other key.",
    "environment_variables": "Environment variables set for the persona's sessions (NAME: value).",
    "application_configuration": "Configuration files by application: path, format "
    "(json, yaml, toml, ini, env, text) and values (or content for text).",
    "required_applications": "Packages to install: name, manager (apt, pip, npm, snap, "
    "flatpak, cargo) and version (also spelled SoftwareStack).",
    "pre_activation_script": "Script run before the persona is applied; failing aborts "
    "with nothing changed. A string, or {run, timeout}.",
    "post_activation_script": "Script run after the persona is applied; failing rolls "
    "every change back. A string, or {run, timeout}.",
    "command_overrides": "Commands that run something else under this persona: command "
    "name to a replacement command line or script.",
    "restricted_commands": "Commands refused under this persona (exit status 126); "
    "glob patterns such as 'mkfs*' allowed.",
    "priority_metrics": "What the machine optimises for: metric name to a weight in [0, 1] "
    "(weights need not sum to 1, but one must be above 0).",
    "learning_domains": "Data the agent may learn baselines from: metrics, system_logs, "
    "network_traffic, api_calls, processes, file_access, auth_events.",
    "trust_levels": "How much risk each action class may take: none, low, medium or high "
    "(e.g. network_access, file_system_modification, resource_scaling).",
    "adaptation_rules": "Rules evaluated on telemetry: a CEL condition 'when' held for "
    "'for' runs 'then' (also spelled TelemetryTriggers). Stored, not acted on yet.",
    "decay_rate": "Fraction of a learned baseline forgotten per hour, in [0, 1].",
    "external_data_sources": "Feeds polled over HTTP(S) every 'every'; their data drives "
    "'when' and 'then' (also spelled ExternalDataSources); one with 'fleet: true' is "
    "fetched once by the server for every machine that uses it.",
    "automated_responses": "Named lists of actions that rules run with {respond: name} "
    "(also spelled AutomatedResponses). Stored, not acted on yet.",
    "telemetry": "What the agent's collectors watch for the granted learning_domains: "
    "interval, logs, access_log, probes, processes, watch, auth_log, scan_findings.",
    "resource_requirements": "CPU, memory, storage and network bandwidth the persona needs, "
    "and a priority under contention (also spelled BaseConfiguration). Stored, not acted on yet.",
    "access_controls": "Who may use the persona, and which files and network endpoints its "
    "sandbox may reach.",
}

_VALUE_TYPES = (Duration, Frequency, Size, Bandwidth, CpuCount)
_ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_SCALAR = {"type": ["string", "number", "boolean"]}


def _doc(obj: object) -> str:
    return " ".join((inspect.getdoc(obj) or "").replace("``", "'").split())


def _walk(node: Any) -> Any:
    """Yield every dict in a schema tree."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a persona in canonical form."""
    schema = Persona.model_json_schema(by_alias=True)
    defs: dict[str, Any] = schema.get("$defs", {})

    # Typed values: a description from their docstring, defaults in canonical spelling.
    for node in _walk(schema):
        # A Field(ge=, le=) inside a dict's value type comes out under its Python names.
        for python, keyword in (("ge", "minimum"), ("le", "maximum")):
            if python in node and node.get("type") == "number":
                node[keyword] = node.pop(python)
        for kind in _VALUE_TYPES:
            if {k: v for k, v in node.items() if k not in ("title", "default")} == kind.json_schema:
                node["description"] = _doc(kind)
    for model in _models():
        target = schema if model is Persona else defs.get(model.__name__)
        if target is None:
            continue
        for name, info in model.model_fields.items():
            prop = target.get("properties", {}).get(info.alias or name)
            if prop is not None and isinstance(info.default, _VALUE_TYPES):
                prop["default"] = info.default.canonical()

    # A script is written as its text when the timeout is the default.
    if "Script" in defs:
        script_ref = {"$ref": "#/$defs/Script"}
        for name in ("pre_activation_script", "post_activation_script"):
            schema["properties"][name] = {
                "anyOf": [{"type": "string", "minLength": 1}, script_ref],
                "description": FIELD_DESCRIPTIONS[name],
            }
        defs["Script"]["properties"]["timeout"]["default"] = str(Duration(300.0))

    # Environment values and labels are strings on the machine; YAML numbers are accepted.
    props = schema["properties"]
    props["environment_variables"]["additionalProperties"] = dict(_SCALAR)
    props["environment_variables"]["propertyNames"] = {"pattern": _ENV_NAME_PATTERN}
    props["labels"]["additionalProperties"] = dict(_SCALAR)

    for name, prop in props.items():
        if name in FIELD_DESCRIPTIONS:
            prop["description"] = FIELD_DESCRIPTIONS[name]
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        **{k: v for k, v in schema.items() if k != "title"},
        "title": "mien persona",
    }


def _models() -> list[type[Any]]:
    from pydantic import BaseModel

    out: list[type[Any]] = []
    todo: list[Any] = [Persona, Script]
    while todo:
        item = todo.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            if item in out:
                continue
            out.append(item)
            for info in item.model_fields.values():
                todo.append(info.annotation)
        todo.extend(getattr(item, "__args__", ()) or ())
    return out
