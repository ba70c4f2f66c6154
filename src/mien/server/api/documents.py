"""Reading persona documents sent to the API: JSON or YAML in any spelling of the persona
language, validated with :func:`mien.spec.document.parse_document`, checked to compose against the
stored personas when they ``extend`` one, and stored in canonical form.

Used by the persona routes; every refusal is a 422 with the language's own problem list.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request

from mien.server.errors import ApiError, json_number_problems, spec_problems
from mien.server.state import ServerState

UNNAMED = "mien-unnamed-persona-7c1e"
"""The stem given to a nameless document, to tell "no name" from a real name."""

DOCUMENT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A persona document in JSON or YAML (canonical or any other spelling mien reads).",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


SourceQuery = Annotated[
    str | None,
    Query(
        max_length=255,
        pattern=r"^[^/\\\x00]+$",
        description="the file the document came from: named in problem positions and, as "
        "`mien validate` does, its stem names a persona whose document has no name",
    ),
]


async def parse_body(request: Request, stem: str, source: str | None = None) -> Any:
    """The request body as a validated :class:`mien.spec.document.Document` (422 otherwise)."""
    from mien.spec.document import parse_document
    from mien.spec.errors import SpecError

    body = await request.body()
    if not body.strip():
        raise ApiError(
            422, "invalid_document", "empty body: send a persona document (JSON or YAML)"
        )
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if source is None:
        is_json = ctype == "application/json" or ctype.endswith("+json")
        source = "body.json" if is_json else "body.yaml"
    try:
        doc = parse_document(body, source, stem=stem)
    except SpecError as exc:
        raise invalid(exc) from None
    except (ValueError, TypeError, RecursionError) as exc:  # defensive: never a 500 for input
        raise ApiError(422, "invalid_document", f"unreadable document: {exc}") from None
    numbers = json_number_problems(doc.data, source)
    if numbers:
        raise ApiError(
            422, "invalid_document", f"invalid persona: {numbers[0].text}", problems=numbers
        )
    return doc


def invalid(exc: Any) -> ApiError:
    problems = spec_problems(exc.problems)
    errors = [p for p in problems if p.severity == "error"]
    first = errors[0].text if errors else str(exc)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ApiError(422, "invalid_document", f"invalid persona: {first}{more}", problems=problems)


def check_composes(state: ServerState, doc: Any) -> None:
    """Refuse a persona whose ``extends`` chain does not resolve against stored personas."""
    from mien.spec.compose import chain_of, compose
    from mien.spec.errors import PersonaNotFound, SpecError
    from mien.spec.layers import Layer

    if not doc.data.get("extends"):
        return
    personas = state.fleet.personas

    def find(name: str, child: Layer) -> Layer:
        parent = personas.get(name)
        if parent is None or parent.deleted:
            raise PersonaNotFound(
                [child.problem(("extends",), f"persona {name!r} does not exist on this server")]
            )
        return Layer("persona", f"{name} v{parent.version}", parent.document, persona=name)

    try:
        compose(chain_of(Layer.of(doc, "persona"), find))
    except SpecError as exc:
        raise invalid(exc) from None


def canonical_data(doc: Any) -> dict[str, Any]:
    """What is stored: the canonical form ``mien render`` prints."""
    from mien.spec.canonical import canonical

    data: dict[str, Any] = canonical(doc.persona)
    return data


def document_hash(doc: Any) -> str:
    from mien.spec.canonical import content_hash

    return content_hash(canonical_data(doc))
