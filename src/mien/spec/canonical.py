"""The canonical form of a persona: the dict, YAML and JSON that ``mien render`` prints, and
the content hash that names a version.

Used by the CLI (render), the server (version hashes, diffs) and the agent (what it applied).
The canonical dict leaves out fields at their defaults, keeps the author's key order inside
maps, and writes every typed value in its one canonical spelling, so rendering a render
gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import yaml

from mien.spec.models import Persona

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def canonical(persona: Persona) -> dict[str, Any]:
    """The persona as plain data in canonical form."""
    data: dict[str, Any] = persona.model_dump(mode="json", exclude_defaults=True, by_alias=True)
    return data


def content_hash(data: dict[str, Any]) -> str:
    """A stable hash of canonical data: ``sha256:`` and 64 hex digits."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


# Strings that a YAML 1.2 reader would take for something else must be quoted.
_NOT_STRING = re.compile(
    r"^(?:~|null|Null|NULL|true|True|TRUE|false|False|FALSE|yes|no|on|off|y|n|Yes|No|On|Off"
    r"|[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?|[-+]?\.[0-9]+(?:[eE][-+]?[0-9]+)?"
    r"|0o[0-7]+|0x[0-9a-fA-F]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


class _CanonicalDumper(_Dumper):  # type: ignore[misc,valid-type]
    def ignore_aliases(self, data: Any) -> bool:
        # Canonical output never uses anchors; checking for them is also wasted time.
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value and value.strip():
        # Scripts and text files read best as literal blocks. A trailing space on a line
        # cannot be kept in block style, so those stay quoted.
        if not any(line != line.rstrip() for line in value.splitlines()):
            return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    if _NOT_STRING.match(value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_CanonicalDumper.add_representer(str, _represent_str)


def to_yaml(data: Any) -> str:
    return yaml.dump(
        data,
        Dumper=_CanonicalDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
        indent=2,
    )


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
