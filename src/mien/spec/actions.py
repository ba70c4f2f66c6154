"""The built-in actions a rule's ``then`` may name: their parameters, risk and trust needed.

One registry, :data:`ACTIONS`, read by the spec (an unknown action name or wrong arguments
is a validation error at the action's position), by the rules engine (each intent carries
the risk category and the trust level it needs, see :mod:`mien.rules.trust`) and by the
agent's executors (``params.model_validate`` gives them typed arguments). The registry
lives in the spec because validating a persona needs it; :mod:`mien.rules.actions`
re-exports it for the layers above.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mien.spec.values import AbsPath, CpuCount, Duration, PersonaName, Size

Risk = Literal[
    "network_access",
    "file_system_modification",
    "resource_scaling",
    "process_control",
    "persona_change",
]
RISKS: tuple[Risk, ...] = (
    "network_access",
    "file_system_modification",
    "resource_scaling",
    "process_control",
    "persona_change",
)
Level = Literal["none", "low", "medium", "high"]

# The persona sections a set_setting overlay may change at run time.
SETTABLE = (
    "os_settings",
    "application_settings",
    "behavioral_settings",
    "environment_variables",
)
_KEY = re.compile(r"^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)+$")
_DATA_REF = re.compile(r"^data(\.[A-Za-z_][\w.-]*)?$")
_RELATIVE = re.compile(r"^[+-]\d+(\.\d+)?$")


class Params(BaseModel):
    """Arguments of one action (everything in the action mapping but ``action``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _data_ref(value: str | None) -> str | None:
    if value is not None and not _DATA_REF.match(value):
        raise ValueError(
            f"{value!r}: 'from' names the data of a source: 'data' (in the source's own "
            "then) or 'data.SOURCE'"
        )
    return value


class SetSetting(Params):
    key: str
    value: Any = None
    from_: str | None = Field(default=None, alias="from")

    @field_validator("key")
    @classmethod
    def _path(cls, key: str) -> str:
        if not _KEY.match(key) or key.split(".", 1)[0] not in SETTABLE:
            raise ValueError(
                f"{key!r} is not a persona key path: write SECTION.KEY with SECTION one of "
                + ", ".join(SETTABLE)
            )
        return key

    @model_validator(mode="after")
    def _one_source(self) -> SetSetting:
        _data_ref(self.from_)
        if (self.value is None) == (self.from_ is None):
            raise ValueError("give exactly one of 'value' or 'from'")
        return self


class SwitchPersona(Params):
    persona: PersonaName


class Run(Params):
    command: Annotated[str, Field(min_length=1, max_length=4096)]


class RestartService(Params):
    service: Annotated[str, Field(pattern=r"^[A-Za-z0-9@][A-Za-z0-9@._:-]*$", max_length=255)]


class FirewallBlock(Params):
    addresses: list[str] | None = None
    from_: str | None = Field(default=None, alias="from")
    timeout: Duration = Duration(3600.0)

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, value: list[str] | None) -> list[str] | None:
        for item in value or ():
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @model_validator(mode="after")
    def _one_source(self) -> FirewallBlock:
        _data_ref(self.from_)
        if (self.addresses is None) == (self.from_ is None):
            raise ValueError("give exactly one of 'addresses' or 'from'")
        return self


class Limit(Params):
    exe: AbsPath
    cpu: Annotated[float, Field(gt=0, le=409600)] | None = None  # percent of one core
    memory: Size | None = None

    @model_validator(mode="after")
    def _something(self) -> Limit:
        if self.cpu is None and self.memory is None:
            raise ValueError("give 'cpu' (percent of one core) and/or 'memory'")
        return self


def _relative_or(kind: type[Any]) -> Any:
    def check(value: Any) -> Any:
        if isinstance(value, str) and _RELATIVE.match(value.strip()):
            return value.strip()
        return kind.parse(value)

    return check


class Scale(Params):
    cpu: Any = None
    memory: Any = None

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: Any) -> Any:
        return None if value is None else _relative_or(CpuCount)(value)

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        return None if value is None else _relative_or(Size)(value)

    @model_validator(mode="after")
    def _something(self) -> Scale:
        if self.cpu is None and self.memory is None:
            raise ValueError("give 'cpu' and/or 'memory' (a count or size, or '+1'/'-1')")
        return self


class Notify(Params):
    # Without a message the notification names the rule and what it saw.
    message: Annotated[str, Field(min_length=1, max_length=4096)] | None = None


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One built-in action: what it risks, the trust it needs, its parameters."""

    name: str
    risk: Risk | None  # None: needs no trust at all
    needs: Level
    params: type[Params]
    reversible: bool
    summary: str


ACTIONS: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec(
            "set_setting",
            "file_system_modification",
            "low",
            SetSetting,
            True,
            "overlay one persona setting (key, value or from) until the rule resolves",
        ),
        ActionSpec(
            "switch_persona",
            "persona_change",
            "medium",
            SwitchPersona,
            True,
            "activate another persona (persona)",
        ),
        ActionSpec("run", "process_control", "high", Run, False, "run a command (command)"),
        ActionSpec(
            "restart_service",
            "process_control",
            "low",
            RestartService,
            False,
            "restart a system service (service)",
        ),
        ActionSpec(
            "firewall_block",
            "network_access",
            "low",
            FirewallBlock,
            True,
            "block addresses (addresses, or from: data.SOURCE) for timeout",
        ),
        ActionSpec(
            "limit",
            "resource_scaling",
            "medium",
            Limit,
            True,
            "cap cpu percent and/or memory of processes by executable (exe)",
        ),
        ActionSpec(
            "scale",
            "resource_scaling",
            "medium",
            Scale,
            True,
            "ask for more or fewer cores or memory for the machine (cpu, memory)",
        ),
        ActionSpec("notify", None, "none", Notify, False, "tell the machine's users (message)"),
    )
}


def params_of(action: BaseModel) -> dict[str, Any]:
    """The parameters of a spec ``Action`` (its extra fields)."""
    return dict(action.model_extra or {})
