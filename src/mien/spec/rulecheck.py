"""Checks of a persona's rules that need more than one field: actions, metrics, names.

Run by :func:`mien.spec.document.validate_data` on every document and by
:func:`mien.spec.compose.compose` on every composed persona. Each problem is a field path
and a message; the caller positions it in the file (``FILE:LINE:COL``) and nothing is
applied. Checked:

* every action: a known built-in (``set_setting``, ``run``, …) with valid arguments
  (:mod:`mien.spec.actions`);
* every metric a condition reads (``metrics``, ``baseline``, ``anomaly``): a known name
  (:mod:`mien.spec.metrics`), of a learning domain the persona grants;
* ``respond`` names a response of ``automated_responses``; ``from: data.NAME`` names a data
  source; ``serves`` names a ``priority_metrics`` goal; rule names are unique.

A persona sketch that has not configured its adaptation yet (no ``learning_domains`` at
all, no ``automated_responses`` at all, as the concept documents' short examples) gets
warnings instead of the domain and response errors: its rules stay unknown, its responses
are reported as "no handler", until it does.

The checks that need the whole persona (domains granted, responses and sources defined,
priorities) run only when ``whole`` is true: on a document that stands alone (no
``extends``, not an overlay) and on a composed persona, since a parent may grant a domain
or define a response that its child's rules use.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from mien.spec.actions import ACTIONS, params_of
from mien.spec.errors import FieldPath
from mien.spec.metrics import domain_of, known_names, metric_refs
from mien.spec.models import Action, Persona

Finding = tuple[FieldPath, str, str]  # path, message, severity (error | warning)


def check(persona: Persona, *, whole: bool) -> list[Finding]:
    """Every problem with the rules of ``persona`` (see the module docstring)."""
    out: list[Finding] = []
    sources = {s.name for s in persona.external_data_sources if s.name}
    seen: dict[str, int] = {}
    for i, rule in enumerate(persona.adaptation_rules):
        path: FieldPath = ("adaptation_rules", i)
        if rule.name:
            if rule.name in seen:
                out.append(
                    (
                        (*path, "name"),
                        f"rule {rule.name!r} is already defined (rule {seen[rule.name] + 1})",
                        "error",
                    )
                )
            seen.setdefault(rule.name, i)
        out += _conditions(
            persona, path, [("when", rule.when), ("clear_when", rule.clear_when)], whole
        )
        out += _actions(persona, (*path, "then"), rule.then, whole, sources, in_source=False)
        if whole and rule.serves and rule.serves not in persona.priority_metrics:
            goals = ", ".join(sorted(persona.priority_metrics)) or "none defined"
            out.append(
                (
                    (*path, "serves"),
                    f"{rule.serves!r} is not a priority_metrics goal ({goals})",
                    "error",
                )
            )
    for i, source in enumerate(persona.external_data_sources):
        path = ("external_data_sources", i)
        out += _actions(persona, (*path, "then"), source.then, whole, sources, in_source=True)
    for name, body in persona.automated_responses.items():
        out += _actions(
            persona, ("automated_responses", name), body, whole, sources, in_source=True
        )
    return out


def _conditions(
    persona: Persona, path: FieldPath, conditions: list[tuple[str, str | None]], whole: bool
) -> Iterator[Finding]:
    granted = set(persona.learning_domains)
    for field, text in conditions:
        if not text:
            continue
        reported: set[str] = set()
        for ref in metric_refs(text):
            if ref.name in reported:
                continue
            reported.add(ref.name)
            domain = domain_of(ref.name)
            where = (*path, field)
            if domain is None:
                hint = difflib.get_close_matches(
                    ref.name, [n.split(":")[0] for n in known_names()], 1
                )
                yield (
                    where,
                    f"unknown metric {ref.name!r}"
                    + (
                        f"; did you mean {hint[0]!r}?"
                        if hint
                        else f" (metrics: {', '.join(known_names())})"
                    ),
                    "error",
                )
            elif whole and domain not in granted:
                yield (
                    where,
                    f"reads {ref.name!r}, a metric of the learning domain {domain!r}, which "
                    "learning_domains does not grant: it is never collected"
                    + (
                        f" (add {domain!r} to learning_domains)"
                        if granted
                        else f", and the rule stays unknown until learning_domains lists {domain!r}"
                    ),
                    "error" if granted else "warning",
                )


def _actions(
    persona: Persona,
    path: FieldPath,
    actions: list[Action],
    whole: bool,
    sources: set[str],
    *,
    in_source: bool,
) -> Iterator[Finding]:
    for j, act in enumerate(actions):
        here = (*path, j)
        if act.respond is not None:
            if whole and act.respond not in persona.automated_responses:
                defined = ", ".join(sorted(persona.automated_responses)) or "none defined"
                if persona.automated_responses:
                    yield (
                        (*here, "respond"),
                        f"response {act.respond!r} is not defined under automated_responses "
                        f"({defined})",
                        "error",
                    )
                else:
                    yield (
                        (*here, "respond"),
                        f"response {act.respond!r} is not defined under automated_responses: "
                        "it will be reported as 'no handler'",
                        "warning",
                    )
            continue
        name = act.action or ""
        spec = ACTIONS.get(name)
        if spec is None:
            hint = difflib.get_close_matches(name, list(ACTIONS), 1)
            yield (
                (*here, "action"),
                f"unknown action {name!r}"
                + (
                    f"; did you mean {hint[0]!r}?"
                    if hint
                    else f" (actions: {', '.join(ACTIONS)}, or respond: NAME)"
                ),
                "error",
            )
            continue
        params = params_of(act)
        try:
            spec.params.model_validate(params)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                loc = tuple(p for p in error["loc"] if isinstance(p, str | int))
                yield ((*here, *loc), _message(name, error), "error")
            continue
        yield from _data_ref(here, params.get("from"), sources, whole, in_source=in_source)


def _data_ref(
    here: FieldPath, ref: Any, sources: set[str], whole: bool, *, in_source: bool
) -> Iterator[Finding]:
    if not isinstance(ref, str):
        return
    if ref == "data":
        if not in_source:
            yield (
                (*here, "from"),
                "'from: data' is the data of the source running the action; in a rule, "
                "name the source: 'from: data.SOURCE'",
                "error",
            )
        return
    name = ref[len("data.") :]
    if whole and name not in sources:
        known = ", ".join(sorted(sources)) or "none defined"
        yield ((*here, "from"), f"no external data source is named {name!r} ({known})", "error")


def _message(action: str, error: Any) -> str:
    kind, msg = error["type"], str(error["msg"])
    if kind == "extra_forbidden":
        fields = ", ".join(f.alias or n for n, f in ACTIONS[action].params.model_fields.items())
        return f"{action} takes no argument {error['loc'][-1]!r} (it takes {fields})"
    if kind == "missing":
        return f"{action} needs this argument"
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    return f"{action}: {msg}"
