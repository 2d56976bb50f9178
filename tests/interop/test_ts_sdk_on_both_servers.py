"""A service written with the official Restate TypeScript SDK (its own HTTP/2 server, Node's
nghttp2, and its own journal core) registered on perdure and on the real Restate server: run
steps, sleeps, state under concurrent calls, calls, delayed sends and awakeables give the same
results on both. The SDK comes from the npm registry (./scripts/setup, pinned there)."""

from __future__ import annotations

import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support import REPO_ROOT, wait_until
from tests.support.process import ManagedProcess

SDK = REPO_ROOT / ".tools" / "ts-sdk" / "node_modules"
SERVICE = REPO_ROOT / "tests" / "interop" / "ts" / "service.mjs"


@pytest.fixture
def ts_service(tmp_path):
    node = shutil.which("node")
    assert node and SDK.is_dir(), "node and the TypeScript SDK are needed (./scripts/setup)"
    work = tmp_path / "ts"
    work.mkdir()
    (work / "node_modules").symlink_to(SDK)  # how Node finds the SDK from the service's directory
    shutil.copy(SERVICE, work / "service.mjs")
    proc = ManagedProcess([node, "service.mjs"], cwd=work, log_dir=tmp_path / "logs", name="ts-service")
    try:
        port = wait_until(lambda: (m := re.search(r"LISTENING (\d+)", proc.log_text())) and m.group(1),
                          timeout=30, what="the TypeScript service to listen")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate(timeout=5)


def test_a_typescript_sdk_service_gives_the_same_results(any_server, ts_service):
    any_server.register(ts_service)

    r = any_server.call("TsGreeter", "greet", "world")
    assert (r.status, r.json()) == (200, "Hello, WORLD!"), r.text

    # 40 concurrent adds over 4 keys: each key's adds run one at a time, none is lost.
    def add(n: int):
        return any_server.call("TsCounter", "add", n, key=f"k{n % 4}")

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(add, range(1, 41)))
    assert all(a.status == 200 for a in answers), [a.text for a in answers if a.status != 200]
    for k in range(4):
        final = any_server.call("TsCounter", "add", 0, key=f"k{k}")
        assert final.json() == sum(n for n in range(1, 41) if n % 4 == k)

    r = any_server.call("TsCounter", "greetAndWait", "ts", key="caller")
    assert (r.status, r.json()) == (200, "Hello, TS! / awoken"), r.text
