"""The sandbox interface without a host: a persona becomes a spec (limits, mounts,
network), bad values are refused naming the field, the flat application settings become
a sourceable env file, handles survive JSON, and the egress ruleset allows only the list."""

from __future__ import annotations

import json

import pytest

from mien.agent.sandbox import Endpoint, Limits, Mount, SandboxError, SandboxHandle, SandboxSpec
from mien.agent.sandbox.base import pick, split_app_config
from mien.agent.sandbox.netns import hosts_file, ruleset
from mien.agent.sandbox.roots import Recipe, app_env_values, layer_key
from mien.spec.models import Persona

SEED = {
    "name": "data-analyst",
    "application_configuration": {
        "jupyter": {"path": "/etc/jupyter.json", "values": {"port": 8888}},
        "database_connection_string": "postgresql://user:pa'ss@db:5432/x",
        "debug": True,
    },
    "resource_requirements": {
        "cpu": "500m",
        "memory": "16GiB",
        "storage": "100GB",
        "network_bandwidth": "100Mbps",
        "priority": 50,
    },
    "access_controls": {
        "filesystem": [{"path": "/srv/data/", "mode": "ro"}, {"path": "/srv/out", "mode": "rw"}],
        "network": {"egress": ["pypi.acme.internal:443", "10.0.0.5:5432"]},
    },
}


def test_a_persona_document_becomes_limits_mounts_and_network() -> None:
    spec = SandboxSpec.from_persona("L1", SEED)
    assert spec.persona_name == "data-analyst"
    assert spec.limits == Limits(0.5, 16 * 2**30, 100 * 10**9, 100 * 10**6, priority=50)
    assert spec.mounts == (Mount("/srv/data", "ro"), Mount("/srv/out", "rw"))
    assert spec.network == "egress"
    assert spec.egress == (Endpoint("pypi.acme.internal", 443), Endpoint("10.0.0.5", 5432))


def test_a_persona_model_gives_the_same_spec_and_no_list_means_no_network() -> None:
    persona = Persona.model_validate({"name": "web", "resource_requirements": {"cpu": 2}})
    spec = SandboxSpec.from_persona("L2", persona)
    assert spec.limits.cpu_cores == 2.0 and spec.limits.memory_bytes is None
    assert (spec.network, spec.egress, spec.mounts) == ("none", (), ())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"resource_requirements": {"memory": "lots"}}, "resource_requirements.memory"),
        ({"resource_requirements": {"cpu": -1}}, "resource_requirements.cpu"),
        ({"access_controls": {"network": {"egress": ["no-port"]}}}, "egress: 'no-port'"),
        ({"access_controls": {"network": {"egress": ["h:70000"]}}}, "egress: 'h:70000'"),
        ({"access_controls": {"filesystem": [{"path": "rel/x"}]}}, "filesystem[0]"),
        ({"access_controls": {"filesystem": [{"path": "/a/../etc"}]}}, "filesystem[0]"),
        ({"access_controls": {"filesystem": [{"path": "/a", "mode": "rwx"}]}}, "filesystem[0]"),
    ],
)
def test_bad_values_are_refused_naming_the_field(change: dict[str, object], message: str) -> None:
    with pytest.raises(SandboxError, match=message.replace("[", r"\[").replace("]", r"\]")):
        SandboxSpec.from_persona("L3", {"name": "x", **change})


def test_a_lease_id_that_could_escape_a_path_is_refused() -> None:
    for bad in ("../x", "a/b", "", "x" * 64):
        with pytest.raises(SandboxError, match="lease id"):
            SandboxSpec.from_persona(bad, {"name": "x"})


def test_flat_settings_become_the_persona_env_file_values() -> None:
    doc, flat = split_app_config(SEED)
    assert list(doc["application_configuration"]) == ["jupyter"]
    assert flat == {
        "database_connection_string": "postgresql://user:pa'ss@db:5432/x",
        "debug": "true",
    }
    assert app_env_values(flat) == {
        "database_connection_string": "postgresql://user:pa'ss@db:5432/x",
        "DATABASE_CONNECTION_STRING": "postgresql://user:pa'ss@db:5432/x",
        "debug": "true",
        "DEBUG": "true",
    }
    assert split_app_config({"name": "x"}) == ({"name": "x"}, {})


def test_handles_survive_json() -> None:
    handle = SandboxHandle("local", "L4", "web", {"dir": "/run/x", "host_uid": 200001})
    assert SandboxHandle.from_json(json.loads(json.dumps(handle.to_json()))) == handle


def test_recipes_are_named_by_content() -> None:
    assert (
        Recipe.parse_base("debian:bookworm", ("jq", "curl")).key()
        == Recipe(packages=("curl", "jq")).key()
    )
    assert Recipe().key() != Recipe(packages=("jq",)).key()
    for bad, what in (("ubuntu:jammy", "--base"), ("debian:Bad Suite", "--base")):
        with pytest.raises(SandboxError, match=what):
            Recipe.parse_base(bad)
    with pytest.raises(SandboxError, match="--packages"):
        Recipe.parse_base("bookworm", ("jq; rm -rf /",))


def test_limits_and_access_do_not_change_the_persona_layer() -> None:
    from pathlib import Path

    other = {**SEED, "resource_requirements": {"cpu": 8}, "access_controls": {}}
    assert layer_key(Path("/b"), SEED) == layer_key(Path("/b"), other)
    assert layer_key(Path("/b"), SEED) != layer_key(Path("/b"), {**SEED, "name": "y"})
    assert layer_key(Path("/b"), SEED) != layer_key(Path("/b"), SEED, user="bob")


def test_the_egress_ruleset_drops_everything_but_the_list() -> None:
    eps = (Endpoint("db.internal", 5432),)
    text = ruleset(eps, {"db.internal": ["10.1.2.3"]})
    assert "policy drop;" in text and "ip daddr 10.1.2.3 tcp dport 5432 accept" in text
    assert text.count("accept") == 5  # lo, replies (out, in), the one endpoint
    assert "10.1.2.3\tdb.internal" in hosts_file({"db.internal": ["10.1.2.3"]})


def test_picking_a_driver_says_what_is_missing() -> None:
    from mien.agent.sandbox.local import LocalDriver

    class NotHere(LocalDriver):
        name = "nothere"

        def available(self) -> str | None:
            return "needs a unicorn"

    with pytest.raises(SandboxError, match="nothere: needs a unicorn"):
        pick({"nothere": NotHere()})
    with pytest.raises(SandboxError, match="no sandbox driver 'k8s'"):
        pick({"nothere": NotHere()}, "k8s")


def test_the_host_glue_can_hand_over_its_own_lease_spec() -> None:
    from dataclasses import dataclass

    from mien.agent.sandbox import Usage, get_driver
    from mien.agent.sandbox.base import as_spec

    @dataclass
    class LeaseSpec:
        lease_id: str
        document: dict[str, object]

    spec = as_spec(LeaseSpec("L5", SEED))
    assert spec == SandboxSpec.from_persona("L5", SEED)
    with pytest.raises(SandboxError, match="not a sandbox spec: str"):
        as_spec("L5")
    assert Usage(1.0, 42, [], False).peak_memory == 42
    with pytest.raises(SandboxError, match="no sandbox driver 'k8s'"):
        get_driver("k8s")
