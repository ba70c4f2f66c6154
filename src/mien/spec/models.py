"""The persona language as pydantic models: every field the concept documents name.

These models are the single definition of what a persona is. The server validates uploads
with them, the agent compiles them into changes, ``mien schema`` exports them as JSON Schema
and ``mien render`` prints them back in canonical form. Field names are the concept
documents' snake_case names; their other spellings (CamelCase keys, a persona wrapped in one
key, ``persona_id``) are turned into these by :mod:`mien.spec.forms`
before validation.

Settings maps (``os_settings``, ``application_settings``, ``behavioral_settings``) are open:
a known key is typed and has a handler on the agent, any other key is kept and reported as
"stored, not applied".
"""

from __future__ import annotations

import posixpath
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictBool,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from mien.spec.conditions import ConditionError, compile_condition
from mien.spec.frequency import Frequency
from mien.spec.telemetry import Telemetry
from mien.spec.values import (
    AbsPath,
    Bandwidth,
    CommandName,
    CpuCount,
    Duration,
    EnvVarName,
    Identifier,
    LogLevel,
    ManagedPath,
    PersonaName,
    Size,
    TrustLevel,
    Url,
    Weight,
)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, serialize_by_alias=True)


def _scalar_to_str(value: Any) -> Any:
    # Environment values are strings on the machine; accept YAML numbers and booleans.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


EnvValue = Annotated[str, BeforeValidator(_scalar_to_str)]


def _condition(value: str) -> str:
    try:
        compile_condition(value)
    except ConditionError as exc:
        raise PydanticCustomError(
            "cel", "{message}", {"message": exc.message, "line": exc.line, "column": exc.column}
        ) from None
    return value


Condition = Annotated[str, BeforeValidator(_scalar_to_str), Field(min_length=1)]


# --- setup -----------------------------------------------------------------------------


class OsSettings(_Open):
    """Operating-system settings. Known: ``theme`` (dark | light | a GTK theme name),
    ``editor`` (command or well-known name: vscode, vim, nano, emacs…), ``terminal_shell``
    (shell name or absolute path; must be listed in /etc/shells)."""

    theme: str | None = None
    editor: str | None = None
    terminal_shell: str | None = None


class ApplicationSettings(_Open):
    """Application settings. Known: ``ide_extensions`` (editor extension ids or well-known
    names), ``browser_extensions`` (Chromium/Firefox extension ids or well-known names)."""

    ide_extensions: list[str] | None = None
    browser_extensions: list[str] | None = None


class BehavioralSettings(_Open):
    """Behaviour. Known: ``auto_update_frequency`` and ``security_scan_frequency``
    (scheduled jobs), ``logging_level`` (the logging configuration the agent and
    applications read)."""

    auto_update_frequency: Frequency | None = None
    security_scan_frequency: Frequency | None = None
    logging_level: LogLevel | None = None

    @field_validator("logging_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


ConfigFormat = Literal["json", "yaml", "toml", "ini", "env", "text"]
_EXTENSIONS: dict[str, ConfigFormat] = {
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
    ".ini": "ini",
    ".cfg": "ini",
    ".conf": "ini",
    ".env": "env",
}


def format_for_path(path: str) -> ConfigFormat:
    """The configuration format a file name implies (``text`` when nothing matches)."""
    return _EXTENSIONS.get(posixpath.splitext(path)[1].lower(), "text")


class AppConfig(_Closed):
    """One application's configuration file. Structured formats merge ``values`` into the
    existing file (keys the persona does not manage are kept); ``text`` writes ``content``.
    Without ``path`` the values are stored in the machine's settings file, not applied."""

    path: ManagedPath | None = None
    format: ConfigFormat | None = None
    values: dict[str, Any] | None = None
    content: str | None = None
    mode: Annotated[str, Field(pattern=r"^0?[0-7]{3,4}$")] | None = None
    owner: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> AppConfig:
        fmt = self.format or (format_for_path(self.path) if self.path else None)
        if fmt == "text":
            if self.values is not None:
                raise ValueError("a text file takes 'content', not 'values'")
            if self.content is None and self.path is not None:
                raise ValueError("a text file needs 'content'")
        elif self.content is not None:
            raise ValueError(f"a {fmt or 'structured'} file takes 'values', not 'content'")
        if fmt in ("ini",) and self.values:
            for section, body in self.values.items():
                if not isinstance(body, dict):
                    raise ValueError(
                        f"ini values are sections of keys: {section!r} must be a mapping"
                    )
        if fmt == "env" and self.values:
            for key, value in self.values.items():
                if isinstance(value, dict | list):
                    raise ValueError(f"env files hold plain values: {key!r} is nested")
        return self

    @property
    def effective_format(self) -> ConfigFormat:
        if self.format:
            return self.format
        return format_for_path(self.path) if self.path else "json"


Manager = Literal["apt", "pip", "npm", "snap", "flatpak", "cargo"]


class Package(_Closed):
    """A required application: a package ``name`` from a package ``manager`` (apt by
    default), optionally pinned to a ``version`` (``2.2.1``, ``>=2.2``, ``latest``)."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9@][A-Za-z0-9@._+/:-]*$")]
    manager: Manager = "apt"
    version: str | None = None
    purpose: str | None = None


# --- behaviour -------------------------------------------------------------------------


class Script(_Closed):
    """A hook script: ``run`` (a script with a #! line, or a shell command) and a
    ``timeout`` (default 5m). A plain string is the script itself."""

    run: Annotated[str, Field(min_length=1)]
    timeout: Duration = Duration(300.0)

    @model_serializer(mode="wrap")
    def _short(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Canonical form: a script with the default timeout is just its text.
        if self.timeout == Duration(300.0):
            return self.run
        return handler(self)


def _script(value: Any) -> Any:
    return {"run": value} if isinstance(value, str) else value


ScriptField = Annotated[Script, BeforeValidator(_script)]


# --- adaptation ------------------------------------------------------------------------


class Action(_Open):
    """One step of a rule: a built-in ``action`` with its parameters
    (``{action: scale, cpu: 4}``), or ``respond`` naming an automated response."""

    action: Identifier | None = None
    respond: Identifier | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Action:
        if (self.action is None) == (self.respond is None):
            raise ValueError("give exactly one of 'action' (a built-in) or 'respond' (a name)")
        return self


class Rule(_Closed):
    """An adaptation rule: when the CEL condition ``when`` has held
    for ``for``, the rule fires and runs ``then``; it resolves once ``clear_when`` (default:
    ``when`` no longer holds) has held for ``clear_for``. ``keep_firing_for`` keeps it
    firing that long after ``when`` stops; ``cooldown`` stops the same action on the same
    target from running again within it; ``serves`` names the ``priority_metrics`` goal
    the rule works for, to settle conflicts with other rules."""

    name: Identifier | None = None
    description: str | None = None
    when: Condition
    for_: Duration | None = Field(default=None, alias="for")
    then: Annotated[list[Action], Field(min_length=1)]
    clear_when: Condition | None = None
    clear_for: Duration | None = None
    keep_firing_for: Duration | None = None
    cooldown: Duration | None = None
    serves: Identifier | None = None

    @field_validator("when", "clear_when")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return None if value is None else _condition(value)


class DataSource(_Closed):
    """An external feed polled every ``every`` (conditional requests, backoff, last good
    data kept); its payload (``parse``: lines | json | text) is ``data`` to ``when`` and
    to the ``then`` actions. ``fleet: true`` marks it fleet-wide: the server fetches it
    once for every machine whose persona names it, and the agents ask the server."""

    name: Identifier | None = None
    url: Url
    every: Duration = Duration(300.0)
    parse: Literal["lines", "json", "text"] = "lines"
    when: Condition | None = None
    then: list[Action] = Field(default_factory=list)
    timeout: Duration = Duration(10.0)
    fleet: StrictBool = False

    @field_validator("when")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return None if value is None else _condition(value)

    @field_validator("every")
    @classmethod
    def _not_too_often(cls, value: Duration) -> Duration:
        if value.seconds < 10:
            raise ValueError("poll at most every 10s")
        return value


LearningDomain = Literal[
    "metrics",
    "system_logs",
    "network_traffic",
    "api_calls",
    "processes",
    "file_access",
    "auth_events",
]


# --- resources -------------------------------------------------------------------------


class ResourceRequirements(_Closed):
    """What the persona needs (an application persona) or the machine should have (a server):
    cores, memory, storage, network bandwidth, and a priority for contention."""

    cpu: CpuCount | None = None
    memory: Size | None = None
    storage: Size | None = None
    network_bandwidth: Bandwidth | None = None
    priority: Annotated[int, Field(ge=0, le=1000)] = 0
    # A lease of a preemptible persona may be ended to admit a higher-priority request.
    preemptible: bool = False


class FileAccess(_Closed):
    path: AbsPath
    mode: Literal["ro", "rw"] = "ro"


class NetworkAccess(_Closed):
    egress: list[str] = Field(default_factory=list)
    ingress: list[str] = Field(default_factory=list)


class AccessControls(_Closed):
    """Who may use the persona (users and ``group:`` names) and what its sandbox may
    reach: files (read-only or read-write) and network endpoints (``host:port``)."""

    users: list[str] = Field(default_factory=list)
    filesystem: list[FileAccess] = Field(default_factory=list)
    network: NetworkAccess = Field(default_factory=NetworkAccess)
    level: TrustLevel | None = None


# --- the persona -----------------------------------------------------------------------

TOP_LEVEL_FIELDS: tuple[str, ...] = ()  # filled below

APPLICATION_ENV_KEY = "application_env"
"""The ``application_configuration`` entry that the flat form (``key: value`` pairs) becomes."""
APPLICATION_ENV_PATH = "/etc/persona/application.env"
"""Where the flat form's settings are written, one ``KEY=value`` a line, for the applications."""


def _flat_application_configuration(value: Any) -> Any:
    """Accept the flat form: ``application_configuration: {database_url: "..."}``.

    Plain values (strings, numbers, booleans) are environment-specific settings handed to
    the applications: they are gathered into one env file at :data:`APPLICATION_ENV_PATH`
    (the entry :data:`APPLICATION_ENV_KEY`). Mappings keep the structured meaning."""
    if not isinstance(value, dict):
        return value
    flat = {k: v for k, v in value.items() if isinstance(v, str | int | float | bool) or v is None}
    if not flat:
        return value
    if APPLICATION_ENV_KEY in value and not isinstance(value[APPLICATION_ENV_KEY], dict):
        flat.pop(APPLICATION_ENV_KEY)
        flat[APPLICATION_ENV_KEY] = value[APPLICATION_ENV_KEY]
    elif APPLICATION_ENV_KEY in value:
        raise PydanticCustomError(
            "flat_conflict",
            "{key} is kept for the flat key-value settings; rename that entry",
            {"key": APPLICATION_ENV_KEY},
        )
    rest = {k: v for k, v in value.items() if k not in flat}
    values = {k: ("" if v is None else v) for k, v in flat.items()}
    rest[APPLICATION_ENV_KEY] = {"path": APPLICATION_ENV_PATH, "format": "env", "values": values}
    return rest


class Persona(_Closed):
    """A persona: a declared role for a machine."""

    name: PersonaName | None = None
    display_name: str | None = None
    description: str | None = None
    extends: PersonaName | None = None
    default_persona: bool = False
    labels: dict[Identifier, EnvValue] = Field(default_factory=dict)
    locked: list[str] = Field(default_factory=list)

    os_settings: OsSettings = Field(default_factory=OsSettings)
    application_settings: ApplicationSettings = Field(default_factory=ApplicationSettings)
    behavioral_settings: BehavioralSettings = Field(default_factory=BehavioralSettings)
    environment_variables: dict[EnvVarName, EnvValue] = Field(default_factory=dict)
    application_configuration: Annotated[
        dict[Identifier, AppConfig], BeforeValidator(_flat_application_configuration)
    ] = Field(default_factory=dict)
    required_applications: list[Package] = Field(default_factory=list)

    pre_activation_script: ScriptField | None = None
    post_activation_script: ScriptField | None = None
    command_overrides: dict[CommandName, Annotated[str, Field(min_length=1)]] = Field(
        default_factory=dict
    )
    restricted_commands: list[CommandName] = Field(default_factory=list)

    priority_metrics: dict[Identifier, Weight] = Field(default_factory=dict)
    learning_domains: list[LearningDomain] = Field(default_factory=list)
    trust_levels: dict[Identifier, TrustLevel] = Field(default_factory=dict)
    adaptation_rules: list[Rule] = Field(default_factory=list)
    decay_rate: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    external_data_sources: list[DataSource] = Field(default_factory=list)
    automated_responses: dict[Identifier, Annotated[list[Action], Field(min_length=1)]] = Field(
        default_factory=dict
    )
    telemetry: Telemetry = Field(default_factory=Telemetry)

    resource_requirements: ResourceRequirements = Field(default_factory=ResourceRequirements)
    access_controls: AccessControls = Field(default_factory=AccessControls)

    @field_validator("priority_metrics")
    @classmethod
    def _some_weight(cls, value: dict[str, float]) -> dict[str, float]:
        if value and not any(value.values()):
            raise ValueError("at least one priority weight must be above 0")
        return value

    @field_validator("locked")
    @classmethod
    def _known_keys(cls, value: list[str]) -> list[str]:
        for key in value:
            head = key.split(".", 1)[0]
            if head not in TOP_LEVEL_FIELDS or head in ("name", "locked"):
                raise ValueError(f"{key!r} does not name a persona setting")
        return value

    @model_validator(mode="after")
    def _overrides_vs_restrictions(self) -> Persona:
        both = sorted(set(self.command_overrides) & set(self.restricted_commands))
        if both:
            raise ValueError(
                f"{', '.join(both)}: a command cannot be both overridden and restricted"
            )
        return self


TOP_LEVEL_FIELDS = tuple(Persona.model_fields)
