"""``/personas``: create, list, read, update (``If-Match``), soft-delete, versions, diff.

Bodies are persona documents in JSON or YAML (any spelling the persona language reads),
validated with :func:`mien.spec.document.parse_document` and, when they ``extend`` another persona,
composed against the latest stored versions. Each create or update that changes content
stores a new immutable version with its content hash.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response

from mien.protocol import (
    DiffChange,
    ErrorBody,
    Page,
    PersonaDiff,
    PersonaSummary,
    PersonaVersion,
    VersionSummary,
)
from mien.server import diff as diffs
from mien.server.api.body import CheckedRoute
from mien.server.api.deps import NAME_RE, Limit, Operator, Reader, State, etag, etag_matches
from mien.server.api.documents import (
    DOCUMENT_BODY,
    UNNAMED,
    SourceQuery,
    canonical_data,
    check_composes,
    document_hash,
    parse_body,
)
from mien.server.errors import ApiError, not_found, spec_problems
from mien.server.state import ServerState
from mien.server.store import personas as q
from mien.server.store.personas import PersonaRow, StaleVersion, VersionRow
from mien.server.tx import Tx

router = APIRouter(
    route_class=CheckedRoute,
    prefix="/personas",
    tags=["personas"],
    responses={
        401: {"model": ErrorBody, "description": "missing or invalid token"},
        403: {"model": ErrorBody, "description": "role may not do this"},
    },
)

NamePath = Annotated[str, Path(pattern=NAME_RE, description="persona name")]


def summary(row: PersonaRow, doc: dict[str, Any] | None = None) -> PersonaSummary:
    doc = doc or {}
    return PersonaSummary(
        name=row.name,
        latest_version=row.latest_version,
        content_hash=row.content_hash,
        etag=etag("v", row.latest_version, row.content_hash),
        default_persona=row.default_persona,
        description=doc.get("description"),
        extends=doc.get("extends"),
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
    )


def version_model(
    ver: VersionRow, row: PersonaRow | None, *, warnings: Any = (), notes: list[str] | None = None
) -> PersonaVersion:
    return PersonaVersion(
        name=ver.name,
        version=ver.version,
        content_hash=ver.content_hash,
        etag=etag("v", ver.version, ver.content_hash),
        created_at=ver.created_at,
        created_by=ver.created_by,
        default_persona=row is not None and row.default_persona,
        description=ver.document.get("description"),
        extends=ver.document.get("extends"),
        latest=row is not None and row.latest_version == ver.version,
        deleted=row is not None and row.deleted_at is not None,
        document=ver.document,
        warnings=spec_problems(list(warnings)),
        notes=notes or [],
    )


def _default_note(state: ServerState, name: str, marked: bool) -> list[str]:
    """A document marked ``default_persona`` does not change the fleet's default (see
    :mod:`mien.server.api.defaults`): say so, and how to change it."""
    current = state.fleet.default_persona
    if not marked or current == name:
        return []
    now = f"the fleet's default is {current!r}" if current else "the fleet has no default"
    return [
        f"the document says default_persona: true, which a push does not act on ({now}); "
        f"to make it the fleet's default: mien persona default {name}"
    ]


def _audit_version(tx: Tx, actor: str, action: str, ver: VersionRow) -> None:
    tx.audit(
        actor,
        action,
        persona=ver.name,
        version=ver.version,
        content_hash=ver.content_hash,
    )
    tx.changed("persona", ver.name)


@router.post(
    "",
    status_code=201,
    response_model=PersonaVersion,
    openapi_extra=DOCUMENT_BODY,
    responses={409: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="Create a persona (its version 1)",
)
async def create_persona(
    request: Request,
    response: Response,
    state: State,
    who: Operator,
    source: SourceQuery = None,
) -> PersonaVersion:
    stem = PurePath(source).stem if source else UNNAMED
    doc = await parse_body(request, stem, source)
    if doc.name == UNNAMED:
        raise ApiError(
            422,
            "invalid_document",
            "name: required field is missing (or PUT /personas/{name} to name it in the URL)",
        )
    check_composes(state, doc)
    notes = _default_note(state, doc.name, doc.persona.default_persona)
    async with state.transaction() as tx:
        created = await q.create(
            tx.session,
            doc.name,
            canonical_data(doc),
            document_hash(doc),
            actor=who.actor,
            now=tx.now,
        )
        if created is None:
            raise ApiError(
                409,
                "exists",
                f"persona {doc.name!r} already exists; update it with PUT /api/v1/personas/{doc.name}",
            )
        row, ver = created
        _audit_version(tx, who.actor, "persona.create", ver)
    response.headers["ETag"] = etag("v", ver.version, ver.content_hash)
    response.headers["Location"] = f"/api/v1/personas/{ver.name}"
    return version_model(ver, row, warnings=doc.warnings, notes=notes)


@router.get("", response_model=Page[PersonaSummary], summary="List personas")
async def list_personas(
    state: State,
    who: Reader,
    limit: Limit = 200,
    after: Annotated[str | None, Query(max_length=63)] = None,
    include_deleted: bool = False,
) -> Page[PersonaSummary]:
    async with state.db.read() as s:
        rows = await q.list_all(s, include_deleted=include_deleted, after=after, limit=limit)
    docs = state.fleet.personas
    items = [summary(r, docs[r.name].document if r.name in docs else None) for r in rows]
    return Page(items=items, next=rows[-1].name if len(rows) == limit else None)


@router.get(
    "/{name}",
    response_model=PersonaVersion,
    responses={
        404: {"model": ErrorBody},
        200: {
            "content": {
                "application/yaml": {
                    "schema": {"type": "object", "description": "the canonical document"}
                }
            }
        },
    },
    summary="Read a persona's latest version (format=yaml for the canonical YAML)",
)
async def get_persona(
    name: NamePath,
    response: Response,
    state: State,
    who: Reader,
    format: Literal["json", "yaml"] = "json",
    include_deleted: bool = False,
) -> Any:
    async with state.db.read() as s:
        row = await q.get(s, name, include_deleted=include_deleted)
        ver = await q.get_version(s, name, row.latest_version) if row else None
    if row is None or ver is None:
        raise not_found(f"persona {name!r}")
    tag = etag("v", ver.version, ver.content_hash)
    if format == "yaml":
        from mien.spec.canonical import to_yaml

        return Response(to_yaml(ver.document), media_type="application/yaml", headers={"ETag": tag})
    response.headers["ETag"] = tag
    return version_model(ver, row)


@router.put(
    "/{name}",
    response_model=PersonaVersion,
    openapi_extra=DOCUMENT_BODY,
    responses={404: {"model": ErrorBody}, 412: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="Update a persona (a new version); If-Match makes it conditional",
)
async def update_persona(
    name: NamePath,
    request: Request,
    response: Response,
    state: State,
    who: Operator,
    if_match: Annotated[str | None, Header(max_length=500)] = None,
    source: SourceQuery = None,
) -> PersonaVersion:
    doc = await parse_body(request, name, source)
    if doc.name != name:
        raise ApiError(
            422,
            "invalid_document",
            f"name: the document names persona {doc.name!r} but the URL names {name!r}",
        )
    check_composes(state, doc)
    notes = _default_note(state, name, doc.persona.default_persona)
    async with state.transaction() as tx:
        current = await q.get(tx.session, name)
        if current is None:
            raise not_found(f"persona {name!r}")
        current_tag = etag("v", current.latest_version, current.content_hash)
        if not etag_matches(if_match, current_tag):
            raise _stale(name, current.latest_version, current_tag)
        try:
            result = await q.add_version(
                tx.session,
                name,
                canonical_data(doc),
                document_hash(doc),
                expected=current.latest_version,
                actor=who.actor,
                now=tx.now,
            )
        except StaleVersion as exc:
            raise _stale(name, exc.current, None) from None
        assert result is not None
        row, ver, created = result
        if created:
            _audit_version(tx, who.actor, "persona.update", ver)
        else:
            notes = [f"unchanged: the content is the same as version {ver.version}"]
    response.headers["ETag"] = etag("v", ver.version, ver.content_hash)
    return version_model(ver, row, warnings=doc.warnings, notes=notes)


def _stale(name: str, version: int, tag: str | None) -> ApiError:
    return ApiError(
        412,
        "stale_version",
        f"persona {name!r} changed since you read it: the latest is version {version}"
        + (f" (ETag {tag})" if tag else "")
        + "; read it again, reapply your change and retry",
        headers={"ETag": tag} if tag else None,
    )


@router.delete(
    "/{name}",
    status_code=204,
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
    summary="Delete a persona (soft: every version is kept); 409 if in use unless force",
)
async def delete_persona(
    name: NamePath,
    state: State,
    who: Operator,
    force: bool = False,
) -> Response:
    if force and not who.at_least("admin"):
        raise ApiError(403, "forbidden", "force-deleting a persona in use needs the admin role")
    uses = state.fleet.uses_of(name)
    if uses and not force:
        raise ApiError(
            409,
            "in_use",
            f"persona {name!r} is in use: " + "; ".join(uses) + " (force=true to delete anyway)",
        )
    async with state.transaction() as tx:
        if not await q.soft_delete(tx.session, name, actor=who.actor, now=tx.now):
            raise not_found(f"persona {name!r}")
        tx.audit(who.actor, "persona.delete", persona=name, forced=force, uses=uses)
        tx.changed("persona", name)
    return Response(status_code=204)


@router.get(
    "/{name}/versions",
    response_model=Page[VersionSummary],
    responses={404: {"model": ErrorBody}},
    summary="Every version of a persona (deleted personas included)",
)
async def list_versions(name: NamePath, state: State, who: Reader) -> Page[VersionSummary]:
    async with state.db.read() as s:
        rows = await q.versions(s, name)
    if not rows:
        raise not_found(f"persona {name!r}")
    return Page(
        items=[
            VersionSummary(
                name=r.name,
                version=r.version,
                content_hash=r.content_hash,
                created_at=r.created_at,
                created_by=r.created_by,
            )
            for r in rows
        ]
    )


@router.get(
    "/{name}/versions/{version}",
    response_model=PersonaVersion,
    responses={404: {"model": ErrorBody}},
    summary="One version of a persona",
)
async def get_version(
    name: NamePath,
    version: Annotated[int, Path(ge=1, le=2**31 - 1)],
    state: State,
    who: Reader,
) -> PersonaVersion:
    async with state.db.read() as s:
        row = await q.get(s, name, include_deleted=True)
        ver = await q.get_version(s, name, version)
    if ver is None:
        raise not_found(f"version {version} of persona {name!r}")
    return version_model(ver, row)


@router.get(
    "/{name}/diff",
    response_model=PersonaDiff,
    responses={404: {"model": ErrorBody}},
    summary="What changed between two versions (default: the latest and the one before)",
)
async def diff_versions(
    name: NamePath,
    state: State,
    who: Reader,
    from_: Annotated[int | None, Query(alias="from", ge=1, le=2**31 - 1)] = None,
    to: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> PersonaDiff:
    async with state.db.read() as s:
        row = await q.get(s, name, include_deleted=True)
        if row is None:
            raise not_found(f"persona {name!r}")
        to_v = to or row.latest_version
        from_v = from_ or max(to_v - 1, 1)
        a = await q.get_version(s, name, from_v)
        b = await q.get_version(s, name, to_v)
    if a is None or b is None:
        missing = from_v if a is None else to_v
        raise not_found(f"version {missing} of persona {name!r}")
    return PersonaDiff(
        name=name,
        from_version=a.version,
        to_version=b.version,
        from_hash=a.content_hash,
        to_hash=b.content_hash,
        changes=[
            DiffChange(path=p, op=op, before=before, after=after)
            for p, op, before, after in diffs.changes(a.document, b.document)
        ],
        unified=diffs.unified(
            a.document, b.document, f"{name} v{a.version}", f"{name} v{b.version}"
        ),
    )
