"""``mien rules test``: a persona's adaptation rules evaluated offline against samples.

Reads the persona (with ``extends``), a JSON file of samples and optional data-source
payloads, steps the rules engine (:mod:`mien.rules`) over the samples in order and prints,
per sample, each rule transition and the actions it would take with the trust verdict, then
rule by rule where it stands. Nothing on the machine is read or changed. The work is in
:mod:`mien.cli.language.ruletest`; heavy modules are imported inside the command so other
commands start fast.

Exit status: 0 no rule fired during the samples; 1 at least one rule fired (whatever
became of its actions: run, refused by trust, suppressed or cooling down); 2 bad input (a
persona that does not validate, a sample or data file that cannot be read).
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from mien.cli import common

MAX_BYTES = 16 * 1024 * 1024  # a sample or data file larger than this is refused


class Output(str, Enum):
    text = "text"
    json = "json"


rules_app = typer.Typer(
    name="rules",
    help="Try a persona's adaptation rules offline.",
    no_args_is_help=True,
)

TEST_HELP = common.paragraphs("""Evaluate a persona's rules against samples and say what they would do.

SAMPLES.json is a list of samples, evaluated in order (so `for:` and `clear_for:` can be
tried), or one sample: {"at": 0, "metrics": {"cpu_percent": 93.5}, "events": {},
"baseline": {}, "anomaly": {}}. "at" is in seconds (default: one more than the previous).
--data NAME=FILE gives an external data source's payload, parsed as the source says.

Exit status: 0 no rule fired, 1 a rule fired (its actions run, refused or suppressed),
2 bad input.

Example:

  mien rules test web.yaml -m samples.json --data threat-intel=ips.txt
""")


def _read(path: Path, what: str) -> str:
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        common.fail(f"{path}: no such {what} file", 2)
    except IsADirectoryError:
        common.fail(f"{path}: is a directory, not a {what} file", 2)
    except OSError as exc:
        common.fail(f"{path}: cannot read: {exc.strerror or exc}", 2)
    if len(raw) > MAX_BYTES:
        common.fail(f"{path}: larger than {MAX_BYTES // (1024 * 1024)} MiB", 2)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        common.fail(f"{path}: not UTF-8 text (byte {exc.start})", 2)


@rules_app.command("test", help=TEST_HELP, no_args_is_help=True)
def test_cmd(
    persona_file: Annotated[
        Path, typer.Argument(metavar="PERSONA", help="The persona file whose rules to test.")
    ],
    metrics: Annotated[
        Path, typer.Option("--metrics", "-m", metavar="FILE.json", help="The samples.")
    ],
    data: Annotated[
        list[str] | None,
        typer.Option("--data", metavar="NAME=FILE", help="A data source's payload. Repeatable."),
    ] = None,
    personas: Annotated[
        list[Path] | None,
        typer.Option("--personas", metavar="DIR", help="Where to find personas for extends."),
    ] = None,
    output: Annotated[
        Output, typer.Option("--output", "-o", help="text for people, json for scripts.")
    ] = Output.text,
) -> None:
    from mien.cli.language.commands import resolve_files
    from mien.cli.language.ruletest import (
        SampleError,
        parse_data,
        parse_samples,
        report,
        run,
        text_lines,
    )

    try:
        resolved = resolve_files(persona_file, [], personas or [])
    except common.CommandFailed as exc:
        common.fail(str(exc), 2)
    persona = resolved.persona
    sources = {s.name: s for s in persona.external_data_sources if s.name}
    payloads = {}
    try:
        samples = parse_samples(_read(metrics, "samples"), str(metrics))
        for item in data or []:
            name, sep, file = item.partition("=")
            if not sep or not name or not file:
                common.fail(f"--data {item!r}: write NAME=FILE", 2)
            if name not in sources:
                known = ", ".join(sorted(sources)) or "none"
                common.fail(
                    f"--data {item!r}: the persona has no data source {name!r} ({known})", 2
                )
            path = Path(file)
            payloads[name] = parse_data(_read(path, "data"), sources[name].parse, str(path))
    except SampleError as exc:
        common.fail(str(exc), 2)
    result = run(persona, samples, payloads)
    doc = report(result, persona)
    if output is Output.json:
        common.print_json(doc)
    else:
        sys.stdout.write("".join(f"{line}\n" for line in text_lines(doc)))
    if result.fired:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``mien rules`` to the ``mien`` application."""
    app.add_typer(rules_app)
