"""Java's own HttpClient against the node's ingress and admin ports (and Restate's, the same). It offers an upgrade to
h2c on every cleartext request (the Restate Java SDK's client is built on it); the node
declines, as Restate does, and must still read each request's body. It used to drop it: the
handler ran with an empty input and the registration had no body."""

from __future__ import annotations

import json
import shutil
import subprocess

SERVICE = "tests.server.services.attempt_start:app"
SOURCE = "tests/server/java/JdkClient.java"


def _jdk_client(tmp_path):
    javac, java = shutil.which("javac"), shutil.which("java")
    assert javac and java, "a JDK is needed (./scripts/setup installs one)"
    from tests.support import REPO_ROOT

    subprocess.run([javac, "-d", str(tmp_path), str(REPO_ROOT / SOURCE)], check=True, timeout=120)

    def call(method: str, url: str, *bodies: str) -> list[tuple[int, str]]:
        out = subprocess.run([java, "-cp", str(tmp_path), "JdkClient", method, url, *bodies],
                             check=True, capture_output=True, text=True, timeout=60).stdout
        return [(int(line.split(" ", 1)[0]), line.split(" ", 1)[1]) for line in out.splitlines()]

    return call


def test_java_httpclient_registers_and_calls_with_its_bodies(tmp_path, any_server, start_service):
    # The same on Restate (the reference) and on perdure.
    call = _jdk_client(tmp_path / "classes")
    svc = start_service(SERVICE)
    [(status, body)] = call("POST", any_server.admin_url + "/deployments", json.dumps({"uri": svc.url}))
    assert status == 201, body
    assert [s["name"] for s in json.loads(body)["services"]] == ["Starts"]
    # Three requests on one connection: each handler gets the body it was sent, and echoes it.
    answers = call("POST", any_server.ingress_url + "/Starts/quick", "7", "123456", '"seven"')
    assert answers == [(200, "7"), (200, "123456"), (200, '"seven"')]
