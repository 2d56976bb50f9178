"""The schema registry survives a reopen of its file unchanged."""

from perdure.protocol.manifest import parse_manifest
from perdure.server.schema import Schema

MANIFEST = {
    "protocolMode": "BIDI_STREAM", "minProtocolVersion": 5, "maxProtocolVersion": 7,
    "services": [
        {"name": "Greeter", "ty": "SERVICE", "handlers": [{"name": "greet"}, {"name": "steps"}]},
        {"name": "Counter", "ty": "VIRTUAL_OBJECT", "enableLazyState": True,
         "handlers": [{"name": "add"}, {"name": "get", "ty": "SHARED"}]},
    ],
}


def test_registered_services_and_deployments_reload_identically(tmp_path):
    schema = Schema(tmp_path / "metadata.db")
    dep, created = schema.register("dp_1test", "http://127.0.0.1:9080", parse_manifest(MANIFEST), "HTTP/2.0",
                                   "perdure/0.1.0", force=False)
    assert created
    before = (dict(schema.deployments), dict(schema.services))
    schema.close()

    reopened = Schema(tmp_path / "metadata.db")

    assert reopened.deployments == before[0]
    assert reopened.services == before[1]
    assert reopened.services["Counter"].handlers["get"].ty == "shared"
    assert reopened.services["Counter"].handlers["add"].ty == "exclusive"
    assert reopened.deployment_for("Greeter").id == dep.id


def test_registering_the_same_uri_again_without_changes_is_idempotent(tmp_path):
    schema = Schema(tmp_path / "metadata.db")
    m = parse_manifest(MANIFEST)
    first, created1 = schema.register("dp_1a", "http://x:1", m, "HTTP/2.0", None, force=False)
    second, created2 = schema.register("dp_1b", "http://x:1", m, "HTTP/2.0", None, force=False)
    assert created1 and not created2 and first.id == second.id
    assert schema.services["Greeter"].revision == 1
