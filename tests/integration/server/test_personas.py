"""Personas over real HTTP: versions, ETags and 412, 422 problem lists, soft delete, diff."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from mien.client import Client, Conflict, InvalidDocument, NotFound, PreconditionFailed
from mien.spec.document import load_file

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "personas"

BASE = {
    "name": "base",
    "environment_variables": {"TEAM": "platform"},
    "os_settings": {"theme": "dark"},
}


def test_every_example_persona_is_accepted_as_is(admin: Client) -> None:
    todo = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    assert todo
    # Upload parents before the personas that extend them.
    for _round in range(len(todo)):
        left = []
        for path in todo:
            try:
                created = admin.create_persona(path)
            except Conflict:  # two example files declare the same persona
                created = admin.update_persona(load_file(path).name, path)
                assert created.version == 2
                continue
            except InvalidDocument as exc:
                if "does not exist" not in str(exc):
                    raise
                left.append(path)
                continue
            assert created.version == 1
            assert created.content_hash.startswith("sha256:")
            again = admin.get_persona(created.name)
            assert again.document == created.document and again.etag == created.etag
        todo = left
    assert not todo, f"never accepted: {todo}"
    names = {p.name for p in admin.list_personas()}
    assert {"developer", "test-runner", "HighTraffic"} <= names


def test_updates_make_immutable_versions_and_diffs(admin: Client) -> None:
    v1 = admin.create_persona(BASE)
    v2 = admin.update_persona("base", {**BASE, "os_settings": {"theme": "light"}}, if_match=v1.etag)
    assert (v1.version, v2.version) == (1, 2)
    assert v1.content_hash != v2.content_hash
    # The same content again is not a new version.
    same = admin.update_persona("base", {**BASE, "os_settings": {"theme": "light"}})
    assert same.version == 2 and same.notes
    assert admin.persona_version("base", 1).document["os_settings"] == {"theme": "dark"}
    assert [v.version for v in admin.persona_versions("base")] == [1, 2]
    diff = admin.persona_diff("base")
    assert (diff.from_version, diff.to_version) == (1, 2)
    assert [(c.path, c.op, c.before, c.after) for c in diff.changes] == [
        ("os_settings.theme", "changed", "dark", "light")
    ]
    assert "-  theme: dark" in diff.unified and "+  theme: light" in diff.unified


def test_stale_if_match_is_refused_with_412(admin: Client) -> None:
    v1 = admin.create_persona(BASE)
    admin.update_persona("base", {**BASE, "description": "one"}, if_match=v1.etag)
    with pytest.raises(PreconditionFailed) as err:
        admin.update_persona("base", {**BASE, "description": "two"}, if_match=v1.etag)
    assert err.value.status == 412 and "version 2" in str(err.value)
    assert admin.get_persona("base").document["description"] == "one"


def test_concurrent_updates_with_the_same_etag_one_wins(admin: Client, server) -> None:  # type: ignore[no-untyped-def]
    v1 = admin.create_persona(BASE)
    results: list[object] = []
    barrier = threading.Barrier(8)

    def update(i: int) -> None:
        with server.client() as api:
            barrier.wait()
            try:
                results.append(
                    api.update_persona(
                        "base", {**BASE, "description": f"writer {i}"}, if_match=v1.etag
                    )
                )
            except PreconditionFailed as exc:
                results.append(exc)

    threads = [threading.Thread(target=update, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wins = [r for r in results if not isinstance(r, PreconditionFailed)]
    assert len(wins) == 1 and len(results) == 8
    assert [v.version for v in admin.persona_versions("base")] == [1, 2]


def test_invalid_documents_get_422_with_every_problem(admin: Client) -> None:
    bad = "name: broken\nos_settings:\n  theme: [1, 2]\nbehavioral_settings:\n  logging_level: loud\nnonsense: 1\n"
    with pytest.raises(InvalidDocument) as err:
        admin.create_persona(bad)
    paths = {p.path for p in err.value.problems}
    assert {"os_settings.theme", "behavioral_settings.logging_level", "nonsense"} <= paths
    assert all(p.line > 0 and p.text.startswith("body.yaml:") for p in err.value.problems)
    with pytest.raises(NotFound):
        admin.get_persona("broken")


def test_name_rules(admin: Client) -> None:
    with pytest.raises(InvalidDocument, match="name"):
        admin.create_persona({"os_settings": {"theme": "dark"}})
    admin.create_persona(BASE)
    with pytest.raises(Conflict):
        admin.create_persona(BASE)
    with pytest.raises(InvalidDocument, match="URL names"):
        admin.update_persona("base", {**BASE, "name": "other"})
    with pytest.raises(NotFound):
        admin.update_persona("missing", {**BASE, "name": "missing"})


def test_extends_resolves_against_stored_personas(admin: Client) -> None:
    with pytest.raises(InvalidDocument, match="does not exist"):
        admin.create_persona({"name": "child", "extends": "base"})
    admin.create_persona(BASE)
    child = admin.create_persona(
        {"name": "child", "extends": "base", "os_settings": {"editor": "vim"}}
    )
    assert child.extends == "base"
    # A cycle through the update of the parent is refused.
    with pytest.raises(InvalidDocument, match="cycle"):
        admin.update_persona("base", {**BASE, "extends": "child"})


def test_delete_is_soft_and_refused_while_in_use(admin: Client) -> None:
    admin.create_persona(BASE)
    admin.create_persona({"name": "child", "extends": "base"})
    with pytest.raises(Conflict, match="extends it"):
        admin.delete_persona("base")
    admin.delete_persona("child")
    with pytest.raises(NotFound):
        admin.get_persona("child")
    # Soft: the history stays, and the name continues its version numbers.
    assert admin.get_persona("child", include_deleted=True).deleted
    assert [v.version for v in admin.persona_versions("child")] == [1]
    again = admin.create_persona({"name": "child", "description": "back"})
    assert again.version == 2
    admin.create_binding("uses-base", {"role": "x"}, "base")
    with pytest.raises(Conflict, match="binding"):
        admin.delete_persona("base")
    admin.delete_persona("base", force=True)
    assert any(
        r.action == "persona.delete" and r.detail["forced"] for r in admin.audit(persona="base")
    )


def test_yaml_rendering_and_raw_http(admin: Client, server) -> None:  # type: ignore[no-untyped-def]
    admin.create_persona(EXAMPLES / "persona_developer.yml")
    text = admin.get_persona_yaml("developer")
    assert text.startswith("name: developer\n") and "theme: dark" in text
    r = httpx.get(
        f"{server.url}/api/v1/personas/developer",
        headers={"Authorization": f"Bearer {server.admin_token}"},
    )
    assert r.status_code == 200 and r.headers["etag"] == r.json()["etag"]
    r = httpx.put(
        f"{server.url}/api/v1/personas/developer",
        content=b"name: developer\n",
        headers={"Authorization": f"Bearer {server.admin_token}", "If-Match": '"v9-nope"'},
    )
    assert r.status_code == 412 and r.json()["code"] == "stale_version"


BIG = "9" * 5000
SURROGATE_HINT = "is half of a UTF-16 surrogate pair, not a character"


UNHOLDABLE = [
        ("POST", "/personas", "application/json", '{"name": "s", "description": "\\ud800"}',
         f"body.json:1:30: description: \\ud800 {SURROGATE_HINT}"),
        ("POST", "/personas", "application/yaml", f"name: b\nos_settings:\n  swappiness: {BIG}\n",
         "body.yaml:3:15: os_settings.swappiness: an integer of 5,000 digits is out of range"),
        ("PUT", "/personas/base", "application/json", '{"environment_variables": {"A": "\\udfff"}}',
         f"environment_variables.A: \\udfff {SURROGATE_HINT}"),
        ("PUT", "/personas/base", "application/json", f'{{"os_settings": {{"swappiness": {BIG}}}}}',
         "os_settings.swappiness: an integer of 5,000 digits is out of range"),
        ("POST", "/bindings", "application/json",
         '{"name": "b", "selector": {"role": "web"}, "persona": "base",'
         ' "override": {"environment_variables": {"A": "\\ud800"}}}',
         f"body: override.environment_variables.A: \\ud800 {SURROGATE_HINT}"),
        ("POST", "/bindings", "application/json",
         '{"name": "b", "selector": {"role": "web"}, "persona": "base",'
         f' "override": {{"environment_variables": {{"A": {BIG}}}}}}}',
         "body: override.environment_variables.A: an integer of 5,000 digits is out of range"),
        ("PUT", "/bindings/web", "application/json",
         '{"name": "web", "selector": {"role": "web"}, "persona": "base",'
         ' "override": {"description": "\\ud800"}}',
         f"body: override.description: \\ud800 {SURROGATE_HINT}"),
]  # fmt: skip


def test_values_nothing_can_hold_get_422_naming_the_field(admin: Client, server) -> None:  # type: ignore[no-untyped-def]
    """A lone UTF-16 surrogate (a 500: the encoder and the database refuse it) and an
    integer of thousands of digits (a bare 400, or "unreadable document") are refused
    with a 422 that names the field, and nothing is stored."""
    admin.create_persona(BASE)
    admin.create_binding("web", {"role": "web"}, "base")
    before = admin.persona_versions("base")
    for method, path, ctype, body, detail in UNHOLDABLE:
        r = httpx.request(
            method,
            f"{server.url}/api/v1{path}",
            content=body.encode(),
            headers={"Authorization": f"Bearer {server.admin_token}", "Content-Type": ctype},
        )
        assert r.status_code == 422, (method, path, r.text)
        assert detail in r.json()["detail"], r.json()
    assert admin.persona_versions("base") == before
    assert [b.name for b in admin.list_bindings()] == ["web"]
