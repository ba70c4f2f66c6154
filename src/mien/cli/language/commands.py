"""``mien validate``, ``render``, ``explain`` and ``schema``: the persona language on the CLI.

These commands read persona files and print what mien makes of them, without touching the
machine: every problem of every file (``validate``), the effective persona after ``extends``
and overlays in canonical form (``render``), which document set a key and what it overrode
(``explain``), and the JSON Schema of the language for editors (``schema``).

Only the standard library and Typer are imported at module level; :mod:`mien.spec` (and
with it pydantic and the CEL runtime) is imported inside each command, so ``mien --help``
and a one-file ``mien validate`` start fast. Problems are printed as
``FILE:LINE:COL: field.path: message``; exit status 0 valid, 1 invalid, 2 usage error.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mien.cli import common
from mien.cli.common import plural

if TYPE_CHECKING:
    from mien.spec.catalog import Catalog
    from mien.spec.document import Document
    from mien.spec.errors import Problem
    from mien.spec.layers import Resolved


class TextOrJson(str, Enum):
    text = "text"
    json = "json"


class RenderFormat(str, Enum):
    yaml = "yaml"
    json = "json"


PERSONA_SUFFIXES = (".yaml", ".yml", ".json")

_PERSONAS_HELP = (
    "Another directory to look in for personas named by [bold]extends[/bold] "
    "(after the file's own directory). Repeatable."
)
_OVERLAY_HELP = (
    "A partial persona merged over the result, in the order given: maps merge by key, "
    "lists replace, null deletes. Repeatable."
)


_PERSONAS = typer.Option(
    "--personas", "-p", metavar="DIR", help=_PERSONAS_HELP, file_okay=False, exists=True
)
_OVERLAYS = typer.Option("--overlay", "-O", metavar="FILE", help=_OVERLAY_HELP)
_OUTPUT = typer.Option("--output", "-o", help="text for people, json for machines.")

VALIDATE_HELP = common.paragraphs("""Check persona files and print every problem, one per line.

Each problem reads [bold]FILE:LINE:COL: field.path: message[/bold]; warnings say
"warning:" and do not fail. A directory stands for the persona files in it (.yaml, .yml,
.json). Parents named by [bold]extends[/bold] are loaded too, so a missing parent or a cycle
is reported. A one-line summary goes to stderr.

Exit status: 0 every file is valid, 1 a problem was found, 2 usage error.

Examples:

  mien validate examples/personas/

  mien validate workstation.yaml kiosk.yaml --personas /etc/mien/personas

  mien validate --output json persona.yaml | jq '.files[].problems'
""")

RENDER_HELP = common.paragraphs("""Print the effective persona in canonical form.

Resolves the [bold]extends[/bold] chain (base first), then merges each --overlay in order,
and prints the result with every other spelling and phrase written out canonically
(durations such as 5m, sizes such as 4GiB, rules as CEL). Rendering the output again gives
the same output. Warnings go to stderr.

Examples:

  mien render examples/personas/HighTraffic.yaml

  mien render workstation.yaml --overlay overlays/eu-west.yaml --format json

  mien render kiosk.yaml > kiosk.rendered.yaml && mien render kiosk.rendered.yaml
""")

EXPLAIN_HELP = common.paragraphs("""Say where a key's value comes from: which document set it, and what it overrode.

KEY is a dotted path such as os_settings.theme or adaptation_rules\\[0].when; quote a
part that contains dots: application_configuration.app.values."server.port".

Examples:

  mien explain workstation.yaml os_settings.theme

  mien explain workstation.yaml labels -O overlays/eu-west.yaml

  mien explain kiosk.yaml restricted_commands --output json
""")

SCHEMA_HELP = common.paragraphs("""Print the JSON Schema of the persona language (canonical form), for editors.

Generated from the same models mien validates with. Point your editor's YAML language
server at it, e.g. with this first line in a persona file:

  # yaml-language-server: $schema=persona.schema.json

Example:

  mien schema > persona.schema.json
""")


# --- validate ------------------------------------------------------------------------------


def _expand(paths: list[Path]) -> list[tuple[Path, str | None]]:
    """Files to check; a directory stands for its persona files (or is itself a problem)."""
    out: list[tuple[Path, str | None]] = []
    for path in paths:
        try:
            if not path.is_dir():
                out.append((path, None))  # reading it reports what is wrong with it
                continue
            found = sorted(
                p for p in path.iterdir() if p.suffix in PERSONA_SUFFIXES and p.is_file()
            )
        except OSError as exc:
            out.append((path, exc.strerror or str(exc)))
            continue
        if not found:
            out.append((path, "no persona files (.yaml, .yml, .json) in this directory"))
        out.extend((p, None) for p in found)
    unique = {str(path): (path, trouble) for path, trouble in reversed(out)}  # first one wins
    return [unique[key] for key in dict.fromkeys(str(path) for path, _ in out)]


def check_file(path: Path, catalog: Catalog) -> tuple[Document | None, list[Problem]]:
    """Every problem of one file: its own, then those of composing it with its parents."""
    from mien.spec.errors import Problem, SpecError

    try:
        doc = catalog.load(path)
    except SpecError as exc:
        return None, list(exc.problems)
    except Exception as exc:  # a bug in mien: still one line about this file, not a traceback
        return None, [Problem(str(path), 0, 0, (), f"internal error, please report: {exc!r}")]
    problems = list(doc.warnings)
    if doc.data.get("extends"):
        try:
            resolved = catalog.resolve(doc)
        except SpecError as exc:
            problems = list(exc.problems)
            if not any(p.source == doc.source and p.severity == "error" for p in problems):
                # The parent is broken: say so in this file too, so its status is right.
                parents = sorted({p.source for p in problems if p.severity == "error"})
                problems.insert(
                    0,
                    doc.where.problem(
                        ("extends",),
                        f"cannot compose with {doc.data['extends']!r}: "
                        f"see the problems in {', '.join(parents)}",
                    ),
                )
        except Exception as exc:  # a bug in mien, as above
            problems.append(Problem(str(path), 0, 0, (), f"internal error, please report: {exc!r}"))
        else:
            problems.extend(resolved.warnings)
    seen: set[str] = set()
    unique: list[Problem] = []
    for p in problems:
        if str(p) not in seen:
            seen.add(str(p))
            unique.append(p)
    return doc, unique


def summary(reports: list[tuple[str, list[Problem]]]) -> str:
    """``2 files valid`` or ``3 problems in 1 file`` (with warnings counted after)."""
    errors = sum(1 for _, ps in reports for p in ps if p.severity == "error")
    warnings = sum(1 for _, ps in reports for p in ps if p.severity == "warning")
    bad = len({p.source for _, ps in reports for p in ps if p.severity == "error"})
    tail = f", {plural(warnings, 'warning')}" if warnings else ""
    if errors:
        return f"{plural(errors, 'problem')} in {plural(bad, 'file')}{tail}"
    return f"{plural(len(reports), 'file')} valid{tail}"


def validate(
    files: Annotated[
        list[Path],
        typer.Argument(metavar="FILE", help="Persona files, or directories of them."),
    ],
    personas: Annotated[list[Path] | None, _PERSONAS] = None,
    output: Annotated[TextOrJson, _OUTPUT] = TextOrJson.text,
    strict: Annotated[
        bool, typer.Option("--strict", help="Warnings fail too (exit status 1).")
    ] = False,
) -> None:
    from mien.spec.catalog import Catalog
    from mien.spec.errors import Problem

    catalog = Catalog(personas or [])
    reports: list[tuple[str, list[Problem]]] = []
    names: dict[str, str | None] = {}
    expanded = _expand(files)
    checked = {str(path) for path, _ in expanded}
    seen: set[str] = set()
    for path, trouble in expanded:
        if trouble is not None:
            reports.append((str(path), [Problem(str(path), 0, 0, (), trouble)]))
            continue
        doc, problems = check_file(path, catalog)
        # A parent's problems belong to the parent's own report when it is checked too,
        # and every problem is printed once.
        mine = [
            p
            for p in problems
            if (p.source == str(path) or p.source not in checked) and str(p) not in seen
        ]
        seen.update(str(p) for p in mine)
        reports.append((str(path), mine))
        names[str(path)] = doc.name if doc is not None else None
    failed = any(p.severity == "error" or strict for _, ps in reports for p in ps)
    if output is TextOrJson.json:
        common.print_json(
            {
                "valid": not failed,
                "summary": summary(reports),
                "files": [
                    {
                        "file": name,
                        "persona": names.get(name),
                        "valid": not any(p.severity == "error" for p in ps),
                        "problems": [p.as_dict() for p in ps],
                    }
                    for name, ps in reports
                ],
            }
        )
    else:
        out = sys.stdout
        for _, problems in reports:
            for problem in problems:
                out.write(f"{problem}\n")
        out.flush()
        common.info(summary(reports))  # with --output json the summary is in the document
    if failed:
        raise typer.Exit(1)


# --- render and explain ----------------------------------------------------------------------


def resolve_files(file: Path, overlays: list[Path], personas: list[Path]) -> Resolved:
    """Load ``file`` and ``overlays`` and compose them; every problem at once, or fail."""
    try:
        return _resolve_files(file, overlays, personas)
    except common.CommandFailed:
        raise
    except Exception as exc:  # a bug in mien: a message, not a traceback
        common.fail(f"internal error, please report: {exc!r}")


def _resolve_files(file: Path, overlays: list[Path], personas: list[Path]) -> Resolved:
    from mien.spec.catalog import Catalog
    from mien.spec.document import load_file
    from mien.spec.errors import SpecError

    catalog = Catalog(personas)
    problems: list[Problem] = []
    doc = None
    try:
        doc = catalog.load(file)
    except SpecError as exc:
        problems.extend(exc.problems)
    layers = []
    for path in overlays:
        try:
            layers.append(load_file(path, overlay=True))
        except SpecError as exc:
            problems.extend(exc.problems)
    resolved = None
    if doc is not None and not problems:
        try:
            resolved = catalog.resolve(doc, layers)
        except SpecError as exc:
            problems.extend(exc.problems)
    if resolved is None:
        by_file: dict[str, list[Problem]] = {}
        for problem in problems:
            if problem.severity == "error":
                sys.stderr.write(f"{problem}\n")
                by_file.setdefault(problem.source, []).append(problem)
        common.fail(f"{summary(list(by_file.items()))}; nothing to show")
    for warning in resolved.warnings:
        sys.stderr.write(f"{warning}\n")
    return resolved


def render(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The persona to render.")],
    overlay: Annotated[list[Path] | None, _OVERLAYS] = None,
    fmt: Annotated[
        RenderFormat,
        typer.Option("--format", "--output", "-f", help="Output format (--output is the same)."),
    ] = RenderFormat.yaml,
    personas: Annotated[list[Path] | None, _PERSONAS] = None,
) -> None:
    from mien.spec.canonical import to_json, to_yaml

    resolved = resolve_files(file, overlay or [], personas or [])
    text = to_json(resolved.data) if fmt is RenderFormat.json else to_yaml(resolved.data)
    sys.stdout.write(text)


def explain(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The persona to look into.")],
    key: Annotated[str, typer.Argument(metavar="KEY.PATH", help="e.g. os_settings.theme")],
    overlay: Annotated[list[Path] | None, _OVERLAYS] = None,
    personas: Annotated[list[Path] | None, _PERSONAS] = None,
    output: Annotated[TextOrJson, _OUTPUT] = TextOrJson.text,
) -> None:
    from mien.cli.language.explain import explain_lines, explain_report, key_path, unknown_key

    resolved = resolve_files(file, overlay or [], personas or [])
    try:
        path = key_path(key, resolved.data)
    except ValueError as exc:
        common.fail(str(exc), 2)
    report = explain_report(resolved, path)
    if report is None:
        common.fail(unknown_key(resolved, path))
    if output is TextOrJson.json:
        common.print_json(report)
    else:
        sys.stdout.write("".join(f"{line}\n" for line in explain_lines(report)))


# --- schema ----------------------------------------------------------------------------------


def schema() -> None:
    from mien.spec.schema import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n")


def register(app: typer.Typer) -> None:
    """Add the persona-language commands to the ``mien`` application."""
    app.command("validate", help=VALIDATE_HELP, no_args_is_help=True)(validate)
    app.command("render", help=RENDER_HELP, no_args_is_help=True)(render)
    app.command("explain", help=EXPLAIN_HELP, no_args_is_help=True)(explain)
    app.command("schema", help=SCHEMA_HELP)(schema)
