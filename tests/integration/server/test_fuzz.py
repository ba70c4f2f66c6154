"""Fuzz every operation of the OpenAPI document (schemathesis) against a real server
process: no 500s, no hangs, answers that match the document. Bounded: a few dozen
examples an operation, so the whole run stays under two minutes; set MIEN_FUZZ_EXAMPLES
for a deeper run."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from server_harness import ServerProcess

from mien.client import AgentClient

TOKENS: dict[str, str] = {}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("fuzz") / "data"
    # Long-polls and command waits capped at one second: a fuzzer asking for an hour
    # must not hang the run.
    server = ServerProcess(data, env={"MIEN_SERVER_LONGPOLL_MAX_WAIT": "1"}).start()
    with server.client() as admin:
        admin.create_persona({"name": "web", "environment_variables": {"A": "1"}})
        admin.create_binding("web", {"role": "web"}, "web")
        enroll = admin.create_token("fuzz", kind="enroll", uses=5).token
    with AgentClient(server.url) as api:
        TOKENS["agent"] = api.enroll(enroll, instance_id="vm-1", tags={"role": "web"}).token
    TOKENS["admin"] = server.admin_token
    yield server
    status = server.stop()
    log = server.log()
    assert status == 0, log
    assert "Traceback" not in log and "internal_error" not in log, log


def _document() -> dict[str, object]:
    # The same document the server serves (checked below); built without a database.
    from mien.server.app import create_app
    from mien.server.settings import Settings

    return create_app(Settings(db_url="sqlite+aiosqlite:///:memory:")).openapi()


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("MIEN_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_survives_fuzzing(case: schemathesis.Case, fuzz_server: ServerProcess) -> None:
    token = TOKENS["agent"] if "/agent/" in case.path else TOKENS["admin"]
    case.call_and_validate(
        base_url=fuzz_server.url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=15,
        # The API validates beyond the schema (a binding's persona must exist, a document
        # must be a persona), and it ignores unknown query parameters, as HTTP APIs do:
        # those two checks would flag correct answers. Every other check applies.
        excluded_checks=[negative_data_rejection, positive_data_acceptance],
    )


def test_the_fuzzed_document_is_the_served_one(fuzz_server: ServerProcess) -> None:
    import httpx

    served = httpx.get(f"{fuzz_server.url}/api/v1/openapi.json").json()
    assert served == DOCUMENT
    assert served["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
