"""Composition: one effective persona from its ``extends`` chain, overlays and customizations.

This is the one function every side calls: ``mien render``/``explain`` with file overlays,
the agent with the user's customizations, the server with tag-binding overrides. Layers are
applied in order, later wins:

1. the ``extends`` chain, base first;
2. overlays (files given with ``--overlay``, or tag-binding overrides by priority);
3. additions: whole personas layered on top by the server's add-bindings, which compose as
   overlays except that their rules and the other accumulating lists are joined to the
   ones below (:mod:`mien.spec.addition`; a rule name on both sides is refused, naming
   both layers);
4. the user's customizations on the machine, except keys the persona ``locked``.

Maps merge by key, lists replace, ``null`` deletes. Identity (``name``, ``extends``,
``default_persona``) is not inherited; ``locked`` accumulates. Every leaf remembers which
layer set it and what it overrode (the *trail*), so ``mien explain`` can say why a value is
what it is.

The layers and the result are defined in :mod:`mien.spec.layers`; the key paths of
customizations and locks in :mod:`mien.spec.keys`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from mien.spec import rulecheck
from mien.spec.addition import ADDED_FIELDS, JOINED_BY_NAME, join
from mien.spec.canonical import canonical, content_hash
from mien.spec.document import Document, lint, problems_from
from mien.spec.errors import FieldPath, PersonaNotFound, Problem, SpecError
from mien.spec.keys import format_key, locking, parse_key
from mien.spec.layers import DELETED, Layer, Origin, Resolved
from mien.spec.models import Persona
from mien.spec.source import SourceMap

MAX_CHAIN = 16


def customization_layer(items: Mapping[str, Any], label: str = "customization") -> Layer:
    """The user's ``key.path: value`` customizations as one layer."""
    data: dict[str, Any] = {}
    for key, value in items.items():
        node = data
        parts = parse_key(key)
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[parts[-1]] = value
    return Layer("customization", label, data)


def _copy(value: Any) -> Any:
    # Persona data is plain JSON-like data: a structural copy is all deepcopy would do,
    # at a fraction of its cost.
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _merge(
    base: dict[str, Any],
    over: Mapping[str, Any],
    layer: Layer,
    trail: dict[FieldPath, list[Origin]],
    path: FieldPath = (),
) -> None:
    for key, value in over.items():
        here = (*path, key)
        if value is None:
            base.pop(key, None)
            trail.setdefault(here, []).append(Origin(layer, here, DELETED))
            continue
        if isinstance(value, dict) and isinstance(base.get(key, {}), dict):  # {} adds nothing
            _merge(base.setdefault(key, {}), value, layer, trail, here)
            continue
        base[key] = _copy(value)
        trail.setdefault(here, []).append(Origin(layer, here, value))


def chain_of(leaf: Layer, find: Callable[[str, Layer], Layer]) -> list[Layer]:
    """The ``extends`` chain of ``leaf``, base first. ``find(name, child)`` loads a parent."""
    chain = [leaf]
    names = [leaf.persona or leaf.label]
    while True:
        parent = chain[0].data.get("extends")
        if not parent:
            return chain
        if parent in names:
            cycle = " → ".join([*names, parent])
            raise SpecError([chain[0].problem(("extends",), f"extends cycle: {cycle}")])
        if len(chain) >= MAX_CHAIN:
            raise SpecError(
                [chain[0].problem(("extends",), f"extends chain longer than {MAX_CHAIN}")]
            )
        try:
            chain.insert(0, find(str(parent), chain[0]))
        except PersonaNotFound as exc:  # name the chain that led here
            trail = " → ".join([*names, str(parent)])
            raise PersonaNotFound(
                [replace(p, message=f"{p.message} (extends chain: {trail})") for p in exc.problems]
            ) from None
        names.append(str(parent))


def compose(
    chain: Sequence[Layer],
    overlays: Iterable[Layer] = (),
    customizations: Layer | None = None,
    *,
    locked_by: Mapping[str, str] | None = None,
) -> Resolved:
    """Merge the layers into an effective persona and validate it.

    ``locked_by`` names the persona behind each lock when the chain was resolved earlier
    (the agent re-composes a stored effective persona with new customizations).
    """
    leaf = chain[-1]
    layers = [*chain, *overlays]
    merged: dict[str, Any] = {}
    trail: dict[FieldPath, list[Origin]] = {}
    locked_by = dict(locked_by or {})
    clashes: list[Problem] = []
    for layer in layers:
        body = {k: v for k, v in layer.data.items() if k not in ("name", "extends", "locked")}
        if layer.kind in ("persona", "addition") and layer is not leaf:
            for own in ("default_persona", "display_name", "description"):  # the parent's own
                body.pop(own, None)
        if layer.kind == "addition":
            clashes += _add(
                merged, {k: body.pop(k) for k in ADDED_FIELDS if k in body}, layer, trail
            )
        _merge(merged, body, layer, trail)
        for key in layer.data.get("locked") or ():
            locked_by.setdefault(str(key), layer.persona or layer.label)
    if clashes:
        raise SpecError(clashes)
    skipped: list[tuple[str, str]] = []
    if customizations is not None and customizations.data:
        allowed: dict[str, Any] = {}
        for key, value in _flatten(customizations.data):
            lock = locking(key, locked_by)
            if lock:
                skipped.append((format_key(key), f"locked by persona {lock[1]!r} ({lock[0]})"))
                continue
            allowed[format_key(key)] = value
        customizations = customization_layer(allowed, customizations.label)
        layers.append(customizations)
        _merge(merged, customizations.data, customizations, trail)
    merged = {"name": leaf.data.get("name") or leaf.persona, **merged}
    if locked_by:
        merged["locked"] = list(locked_by)
    try:
        persona = Persona.model_validate(merged)
    except ValidationError as exc:
        raise SpecError(_blame(exc, trail, layers)) from None
    found = _blame_paths(rulecheck.check(persona, whole=True), trail, layers)
    if any(p.severity == "error" for p in found):
        raise SpecError(found)
    data = canonical(persona)
    warnings = found + lint(persona, leaf.where or SourceMap(leaf.label))
    return Resolved(
        persona=persona,
        data=data,
        hash=content_hash(data),
        chain=[layer.persona or layer.label for layer in chain],
        layers=layers,
        trail=trail,
        locked_by=locked_by,
        skipped=skipped,
        warnings=warnings,
    )


def _add(
    merged: dict[str, Any],
    lists: Mapping[str, Any],
    layer: Layer,
    trail: dict[FieldPath, list[Origin]],
) -> list[Problem]:
    """Join an addition's accumulating lists to ``merged``; the clashes, as problems."""
    problems: list[Problem] = []
    for key, above in lists.items():
        if not isinstance(above, list):  # invalid: validation reports it where it was set
            _merge(merged, {key: above}, layer, trail)
            continue
        joined = join(key, merged.get(key), above)
        for clash in joined.clashes:
            below = _last_origin((key, clash.below), trail)
            what = JOINED_BY_NAME[key]
            problems.append(
                layer.problem(
                    (key, clash.above),
                    f"{what} {clash.name!r} is already defined by "
                    f"{_source(below.layer) if below else 'a layer below'}: "
                    f"a {what} name must be unique across the layers; rename one of them",
                )
            )
        merged[key] = _copy(joined.value)
        for index in joined.added:
            here = (key, index)
            trail.setdefault(here, []).append(Origin(layer, here, joined.value[index]))
    return problems


def _source(layer: Layer) -> str:
    return f"persona {layer.label}" if layer.kind == "persona" else layer.label


def _flatten(data: Mapping[str, Any], path: FieldPath = ()) -> Iterable[tuple[FieldPath, Any]]:
    for key, value in data.items():
        here = (*path, key)
        if isinstance(value, dict) and value:
            yield from _flatten(value, here)
        else:
            yield here, value


def _blame(
    exc: ValidationError, trail: dict[FieldPath, list[Origin]], layers: list[Layer]
) -> list[Problem]:
    """Errors in a composed persona, each reported in the layer that set the bad value."""
    out: list[Problem] = []
    for problem in problems_from(exc, SourceMap("(composed)"), None):
        origin = _last_origin(problem.path, trail)
        layer = origin.layer if origin else layers[-1]
        located = layer.problem(problem.path, problem.message)
        if layer.where is None:
            located = Problem(layer.label, 0, 0, problem.path, problem.message)
        out.append(located)
    return out


def _blame_paths(
    found: list[rulecheck.Finding], trail: dict[FieldPath, list[Origin]], layers: list[Layer]
) -> list[Problem]:
    """Rule problems of a composed persona, each in the layer that set the value."""
    out: list[Problem] = []
    for path, message, severity in found:
        origin = _last_origin(path, trail)
        layer = origin.layer if origin else layers[-1]
        problem = layer.problem(path, message)
        out.append(replace(problem, severity=severity))  # type: ignore[arg-type]
    return out


def _last_origin(path: FieldPath, trail: dict[FieldPath, list[Origin]]) -> Origin | None:
    for cut in range(len(path), 0, -1):
        origins = trail.get(path[:cut])
        if origins:
            return origins[-1]
    below = [o for p, origins in trail.items() if p[: len(path)] == path for o in origins]
    return below[-1] if below else None


def resolve(
    leaf: Document | Layer,
    find: Callable[[str, Layer], Layer] | None = None,
    overlays: Iterable[Document | Layer] = (),
    customizations: Mapping[str, Any] | Layer | None = None,
) -> Resolved:
    """Resolve a persona: its extends chain (via ``find``), overlays, customizations."""
    leaf_layer = leaf if isinstance(leaf, Layer) else Layer.of(leaf)

    def missing(name: str, child: Layer) -> Layer:
        raise PersonaNotFound([child.problem(("extends",), f"persona {name!r} not found")])

    chain = chain_of(leaf_layer, find or missing)
    over = [o if isinstance(o, Layer) else Layer.of(o, "overlay") for o in overlays]
    custom = (
        customizations
        if isinstance(customizations, Layer) or customizations is None
        else customization_layer(customizations)
    )
    return compose(chain, over, custom)


__all__ = [
    "MAX_CHAIN",
    "chain_of",
    "compose",
    "customization_layer",
    "resolve",
]
