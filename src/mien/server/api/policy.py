"""``/policy``: the fleet policy — read the version in force, push a new one (``If-Match``
makes it conditional; admin only), list and read every version.

Bodies are policy documents in YAML or JSON, validated with
:func:`mien.spec.policy.parse_policy`; a bad one is refused (422) with each problem's line
and field, and nothing is stored. Each push that changes the content stores a new
immutable version, is audited (``policy.update``), and recomputes every instance's desired
state (trust caps) on every replica.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request, Response

from mien.protocol import ErrorBody, Page, PolicyVersion, PolicyVersionSummary
from mien.server.api.body import CheckedRoute
from mien.server.api.deps import Admin, State, Viewer, etag, etag_matches
from mien.server.api.documents import SourceQuery
from mien.server.errors import ApiError, not_found, spec_problems
from mien.server.store import policy as q
from mien.server.store.policy import PolicyRow, StalePolicy

router = APIRouter(
    route_class=CheckedRoute,
    prefix="/policy",
    tags=["policy"],
    responses={
        401: {"model": ErrorBody, "description": "missing or invalid token"},
        403: {"model": ErrorBody, "description": "role may not do this"},
    },
)

POLICY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A fleet policy document in YAML or JSON.",
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}

NONE_TAG = etag("p", 0)


def _model(row: PolicyRow | None, *, latest: bool = True, notes: list[str] | None = None) -> Any:
    if row is None:
        return PolicyVersion(version=0, etag=NONE_TAG, notes=notes or [])
    return PolicyVersion(
        version=row.version,
        content_hash=row.content_hash,
        etag=etag("p", row.version, row.content_hash),
        created_at=row.created_at,
        created_by=row.created_by,
        latest=latest,
        document=row.document,
        notes=notes or [],
    )


def _tag(row: PolicyRow | None) -> str:
    return etag("p", row.version, row.content_hash) if row else NONE_TAG


async def _parse(request: Request, source: str | None) -> Any:
    from mien.spec.errors import SpecError
    from mien.spec.policy import parse_policy

    body = await request.body()
    if not body.strip():
        raise ApiError(422, "invalid_document", "empty body: send a policy document (YAML or JSON)")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if source is None:
        source = "body.json" if ctype == "application/json" else "body.yaml"
    try:
        return parse_policy(body, source)
    except SpecError as exc:
        problems = spec_problems(exc.problems)
        errors = [p for p in problems if p.severity == "error"]
        first = errors[0].text if errors else str(exc)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ApiError(
            422, "invalid_document", f"invalid policy: {first}{more}", problems=problems
        ) from None
    except (ValueError, TypeError, RecursionError, ArithmeticError) as exc:  # never a 500
        raise ApiError(422, "invalid_document", f"unreadable policy: {exc}") from None


@router.get(
    "",
    response_model=PolicyVersion,
    summary="The fleet policy in force (version 0 and no document: none was pushed)",
)
async def get_policy(response: Response, state: State, who: Viewer) -> PolicyVersion:
    async with state.db.read() as s:
        row = await q.latest(s)
    response.headers["ETag"] = _tag(row)
    model: PolicyVersion = _model(row)
    return model


@router.put(
    "",
    response_model=PolicyVersion,
    openapi_extra=POLICY_BODY,
    responses={412: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="Push a new version of the fleet policy (admin); If-Match makes it conditional",
)
async def put_policy(
    request: Request,
    response: Response,
    state: State,
    who: Admin,
    if_match: Annotated[str | None, Header(max_length=500)] = None,
    source: SourceQuery = None,
) -> PolicyVersion:
    from mien.spec.canonical import content_hash

    doc = await _parse(request, source)
    data = doc.data
    digest = content_hash(data)
    notes: list[str] = []
    async with state.transaction() as tx:
        current = await q.latest(tx.session)
        if not etag_matches(if_match, _tag(current)):
            raise _stale(current.version if current else 0, _tag(current))
        try:
            row, created = await q.add_version(
                tx.session,
                data,
                digest,
                expected=current.version if current else 0,
                actor=who.actor,
                now=tx.now,
            )
        except StalePolicy as exc:
            raise _stale(exc.current, None) from None
        if created:
            tx.audit(
                who.actor,
                "policy.update",
                version=row.version,
                content_hash=row.content_hash,
                trust_entries=len(doc.policy.trust),
                switching_entries=None
                if doc.policy.switching is None
                else len(doc.policy.switching),
            )
            tx.changed("policy")
        else:
            notes.append(f"unchanged: the content is the same as version {row.version}")
    response.headers["ETag"] = _tag(row)
    model: PolicyVersion = _model(row, notes=notes)
    return model


def _stale(version: int, tag: str | None) -> ApiError:
    return ApiError(
        412,
        "stale_version",
        f"the fleet policy changed since you read it: the latest is version {version}"
        + (f" (ETag {tag})" if tag else "")
        + "; read it again, reapply your change and retry",
        headers={"ETag": tag} if tag else None,
    )


@router.get(
    "/versions",
    response_model=Page[PolicyVersionSummary],
    summary="Every version of the fleet policy, newest first",
)
async def list_versions(state: State, who: Viewer) -> Page[PolicyVersionSummary]:
    async with state.db.read() as s:
        rows = await q.versions(s)
    return Page(
        items=[
            PolicyVersionSummary(
                version=r.version,
                content_hash=r.content_hash,
                created_at=r.created_at,
                created_by=r.created_by,
            )
            for r in rows
        ]
    )


@router.get(
    "/versions/{version}",
    response_model=PolicyVersion,
    responses={404: {"model": ErrorBody}},
    summary="One version of the fleet policy",
)
async def get_version(
    version: Annotated[int, Path(ge=1, le=2**31 - 1)], state: State, who: Viewer
) -> PolicyVersion:
    async with state.db.read() as s:
        row = await q.get_version(s, version)
        newest = await q.latest(s)
    if row is None:
        raise not_found(f"version {version} of the fleet policy")
    model: PolicyVersion = _model(row, latest=newest is not None and newest.version == version)
    return model
