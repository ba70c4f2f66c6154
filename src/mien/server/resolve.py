"""The desired persona of an instance, and why: pure functions over a snapshot.

Order:

1. an explicit activation (``POST /instances/{id}/personas/{name}/activate``), pinned to
   the version that was latest when it was made (or the one asked for);
2. else the bindings whose tag selector matches the instance: the highest-priority one
   chooses the persona (ties: the more specific selector, then the name);
3. else the fleet's default persona (marked only by ``PUT /personas/{name}/default``; the
   most recently marked one, should an older database have several), so a new machine
   gets it on its first contact;
4. else nothing: the agent keeps what it has.

Only bindings of mode ``replace`` (the default) choose. Whatever chose the persona, the
overrides of every matching binding that names that same persona are composed over it as
overlays, lowest priority first (so the highest wins), with
:func:`mien.spec.compose.compose` — the same composition ``mien render`` uses. ``extends``
resolves against the latest version of each parent. An override that no longer composes
(its persona changed under it) is skipped and named in the explanation, never fatal.

Then every matching binding of mode ``add`` layers its own persona (with its own override)
on top, as a layer of kind ``addition``: settings overlay, rules and the other
accumulating lists join (:mod:`mien.spec.addition`). They apply in the reverse of decision
order — lowest priority, then least specific selector, then name, first — so the highest
ranked is applied last and wins a setting both set. A persona is added once (by its
highest-ranked add-binding); an add-binding naming the chosen persona contributes its
override only, and one naming a persona already in the chosen persona's ``extends`` chain
is skipped and named. An addition that does not compose (a rule name defined twice) is
an error of the whole desired state, naming both layers: nothing is half-applied. The
agent still receives one composed persona.

:func:`choose` is cheap and runs per instance; :func:`compose_choice` is the expensive
part and runs once per distinct :class:`Choice` (the fleet cache memoises it). Why the
outcome is what it is, for the API, is :mod:`mien.server.explain`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from mien.spec.compose import chain_of, compose
from mien.spec.errors import PersonaNotFound, SpecError
from mien.spec.layers import Layer, Resolved

Source = Literal["activation", "binding", "default", "none"]
Mode = Literal["replace", "add"]


@dataclass(frozen=True)
class PersonaDoc:
    """One stored persona version as the resolver sees it."""

    name: str
    version: int
    content_hash: str
    document: dict[str, Any]
    default_persona: bool = False
    default_since: datetime | None = None
    deleted: bool = False


@dataclass(frozen=True)
class BindingDoc:
    name: str
    selector: Mapping[str, str | list[str]]
    persona: str
    override: dict[str, Any] | None
    priority: int
    version: int = 1
    mode: Mode = "replace"

    @property
    def specificity(self) -> int:
        return len(self.selector)


@dataclass(frozen=True)
class ActivationRef:
    id: str
    persona: str
    version: int


@dataclass(frozen=True)
class Choice:
    """Which persona, at which version, with which bindings' overrides — the memo key."""

    source: Source
    persona: str | None = None
    version: int | None = None  # pinned by an activation; None = the latest
    overrides: tuple[str, ...] = ()  # binding names, in composition order
    bindings: tuple[str, ...] = ()  # every matching binding naming this persona
    activation_id: str | None = None
    note: str | None = None  # why an activation or binding was passed over
    additions: tuple[str, ...] = ()  # add-binding names, in composition order

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.source, self.persona, self.version, self.overrides, self.additions)


@dataclass(frozen=True)
class Effective:
    """The composed desired persona (``data is None`` when there is none)."""

    choice: Choice
    version: int | None = None
    hash: str | None = None
    data: dict[str, Any] | None = None
    resolved: Resolved | None = field(default=None, compare=False, repr=False)
    skipped: tuple[str, ...] = ()
    error: str | None = None
    brought_by: tuple[str | None, ...] = ()  # per layer of ``resolved``: the binding, if any


# --- selection -------------------------------------------------------------------------


def selector_matches(selector: Mapping[str, str | list[str]], tags: Mapping[str, str]) -> bool:
    """Every selector key must match: a value equal, one of a list, or ``*`` (present)."""
    for key, wanted in selector.items():
        have = tags.get(key)
        if have is None:
            return False
        if wanted == "*":
            continue
        if isinstance(wanted, list):
            if have not in wanted:
                return False
        elif have != wanted:
            return False
    return True


def rank(bindings: Sequence[BindingDoc]) -> list[BindingDoc]:
    """Bindings in decision order: priority, then specificity (both highest first), name."""
    return sorted(bindings, key=lambda b: (-b.priority, -b.specificity, b.name))


def matching(ranked: Sequence[BindingDoc], tags: Mapping[str, str]) -> tuple[BindingDoc, ...]:
    """The bindings (already :func:`rank`-ed) that select an instance with ``tags``."""
    return tuple(b for b in ranked if selector_matches(b.selector, tags))


def default_persona(personas: Mapping[str, PersonaDoc]) -> str | None:
    """The persona a new machine gets: marked ``default_persona``, most recently marked."""
    marked = [p for p in personas.values() if p.default_persona and not p.deleted]
    if not marked:
        return None
    earliest = datetime.min.replace(tzinfo=None)
    best = max(
        marked,
        key=lambda p: (
            (p.default_since.replace(tzinfo=None) if p.default_since else earliest),
            p.name,
        ),
    )
    return best.name


def live(personas: Mapping[str, PersonaDoc], name: str) -> bool:
    """Whether persona ``name`` is stored and not deleted."""
    doc = personas.get(name)
    return doc is not None and not doc.deleted


def choose(
    matches: Sequence[BindingDoc],
    activation: ActivationRef | None,
    personas: Mapping[str, PersonaDoc],
    default: str | None,
) -> Choice:
    """Decide the persona of one instance (``matches`` from :func:`matching`)."""
    note = None
    source: Source = "none"
    persona: str | None = None
    version: int | None = None
    if activation is not None:
        if live(personas, activation.persona):
            source, persona, version = "activation", activation.persona, activation.version
        else:
            note = f"activated persona {activation.persona!r} was deleted"
    if persona is None:
        for binding in matches:
            if binding.mode == "add":
                continue
            if live(personas, binding.persona):
                source, persona = "binding", binding.persona
                break
            note = note or f"binding {binding.name!r} names deleted persona {binding.persona!r}"
    if persona is None and default is not None:
        source, persona = "default", default
    if persona is None:
        return Choice("none", note=note)
    same = [b for b in matches if b.persona == persona]
    overrides = tuple(b.name for b in reversed(same) if b.override)
    chooser_first = sorted(same, key=lambda b: b.mode == "add")  # stable: rank kept
    return Choice(
        source,
        persona,
        version,
        overrides,
        tuple(b.name for b in chooser_first),
        activation.id if source == "activation" and activation else None,
        note,
        additions(matches, persona, personas),
    )


def additions(
    matches: Sequence[BindingDoc], chosen: str, personas: Mapping[str, PersonaDoc]
) -> tuple[str, ...]:
    """The add-bindings whose personas layer over ``chosen``, in composition order."""
    seen = {chosen}
    out: list[str] = []
    for b in matches:  # decision order: the highest-ranked binding adds a persona
        if b.mode == "add" and b.persona not in seen and live(personas, b.persona):
            seen.add(b.persona)
            out.append(b.name)
    return tuple(reversed(out))


# --- composition -----------------------------------------------------------------------


def persona_layer(doc: PersonaDoc) -> Layer:
    return Layer("persona", f"{doc.name} v{doc.version}", doc.document, persona=doc.name)


def binding_layer(binding: BindingDoc) -> Layer:
    return Layer(
        "binding", f"binding {binding.name} (priority {binding.priority})", binding.override or {}
    )


def _reason(exc: SpecError) -> str:
    return "; ".join(str(p) for p in exc.errors) or str(exc)


def compose_choice(
    choice: Choice,
    personas: Mapping[str, PersonaDoc],
    bindings: Mapping[str, BindingDoc],
    pinned: Mapping[tuple[str, int], PersonaDoc],
) -> Effective:
    """Compose the chosen persona with its overrides and additions (``pinned`` holds old
    versions)."""
    if choice.persona is None:
        return Effective(choice)
    latest = personas.get(choice.persona)
    leaf_doc = latest
    if choice.version is not None and (latest is None or latest.version != choice.version):
        leaf_doc = pinned.get((choice.persona, choice.version))
    if leaf_doc is None:
        return Effective(
            choice, error=f"persona {choice.persona!r} v{choice.version} is not stored"
        )

    def find(name: str, child: Layer) -> Layer:
        parent = personas.get(name)
        if parent is None or parent.deleted:
            raise PersonaNotFound(
                [child.problem(("extends",), f"persona {name!r} (extended) does not exist")]
            )
        return persona_layer(parent)

    try:
        chain = chain_of(persona_layer(leaf_doc), find)
        base = compose(chain)
    except SpecError as exc:
        return Effective(choice, leaf_doc.version, error=f"cannot resolve: {_reason(exc)}")
    overrides = [bindings[n] for n in choice.overrides if n in bindings]
    resolved = base
    skipped: list[str] = []
    kept: list[BindingDoc] = []
    if overrides:
        try:
            resolved = compose(chain, [binding_layer(b) for b in overrides])
            kept = overrides
        except SpecError:
            # Find the culprits one at a time; only this (rare) path pays for it.
            for binding in overrides:
                layer = binding_layer(binding)
                try:
                    resolved = compose(chain, [*map(binding_layer, kept), layer])
                except SpecError as exc:
                    first = exc.errors[0] if exc.errors else None
                    skipped.append(f"{layer.label}: {first.message if first else exc}")
                    continue
                kept.append(binding)
            if not kept:
                resolved = base
    added: list[tuple[BindingDoc, Layer]] = []
    for name in choice.additions:
        adder = bindings.get(name)
        if adder is None:
            continue
        if adder.persona in base.chain:
            skipped.append(
                f"binding {name}: persona {adder.persona!r} is already in the chain "
                f"{' → '.join(base.chain)}; nothing to add"
            )
            continue
        try:
            layer = addition_layer(adder, personas, find)
        except SpecError as exc:
            return Effective(
                choice,
                leaf_doc.version,
                error=f"cannot add persona {adder.persona!r} of binding {name!r}: {_reason(exc)}",
            )
        added.append((adder, layer))
    if added:
        try:
            resolved = compose(chain, [*map(binding_layer, kept), *(a[1] for a in added)])
        except SpecError as exc:
            return Effective(choice, leaf_doc.version, skipped=tuple(skipped), error=_reason(exc))
    brought = (
        *((choice.bindings[0] if choice.source == "binding" else None) for _ in chain),
        *(b.name for b in kept),
        *(b.name for b, _ in added),
    )
    return Effective(
        choice,
        leaf_doc.version,
        resolved.hash,
        resolved.data,
        resolved,
        tuple(skipped),
        brought_by=brought,
    )


def addition_layer(
    binding: BindingDoc,
    personas: Mapping[str, PersonaDoc],
    find: Callable[[str, Layer], Layer],
) -> Layer:
    """An add-binding's persona, composed on its own (its chain and its override), as one
    layer of kind ``addition``. Raises :class:`SpecError` when it does not compose."""
    doc = personas[binding.persona]
    chain = chain_of(persona_layer(doc), find)
    own = compose(chain, [binding_layer(binding)] if binding.override else [])
    via = f" (extends {' → '.join(reversed(own.chain[:-1]))})" if len(own.chain) > 1 else ""
    label = f"persona {doc.name} v{doc.version}{via}, added by binding {binding.name}"
    return Layer("addition", label, own.data, persona=doc.name)
