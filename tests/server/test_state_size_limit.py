"""A state value over the server's limit fails the attempt with a message naming the key, the
size and the limit; nothing is written, and the failure is retried under the invocation's retry
policy, as the real Restate server retries a message over its `message-size-limit` (RT0003).

perdure runs with `--max-state-value-size 64KiB`; Restate with its invoker's
`message-size-limit` at 64 KiB, which it enforces on whole protocol messages with 256 KiB of
headroom (a 1,000,000-character value fails on both). The wording differs: Restate names the
encoded message size and its effective limit, not the key."""

from __future__ import annotations

import pytest

from tests.server.lifecycle_helpers import post, query
from tests.support import PerdureServer, RestateServer, http_request, wait_until

CATALOG = "tests.server.services.official_catalog:app"
LIMIT = 64 * 1024
BIG = 1_000_000  # characters; its JSON encoding (quotes included) is BIG + 2 bytes


def _limited_server(kind: str, tmp_path):
    if kind == "perdure":
        return PerdureServer(tmp_path / "perdure", log_dir=tmp_path / "logs",
                             extra_args=["--max-state-value-size", "64KiB"])
    return RestateServer(tmp_path / "restate", log_dir=tmp_path / "logs",
                         env={"RESTATE_WORKER__INVOKER__MESSAGE_SIZE_LIMIT": str(LIMIT)})


def _blob_size(server, key: str) -> int:
    r = post(server, f"/Shelf/{key}/blob_size")
    assert r.status == 200, r.text
    return r.json()


@pytest.fixture(params=["perdure", "restate"])
def limited(request, tmp_path, start_service):
    """(kind, server) with the limit set and the catalog services registered."""
    server = _limited_server(request.param, tmp_path).start()
    try:
        server.register(start_service(CATALOG).url)
        yield request.param, server
    finally:
        server.cleanup()


def _check_message(kind: str, message: str) -> None:
    if kind == "perdure":
        assert f"state value for key 'blob' is {BIG + 2} bytes, over the limit of {LIMIT} bytes" in message
        assert "nothing was written" in message
    else:
        assert "hit message size limit" in message


def test_an_oversized_state_value_fails_with_the_key_size_and_limit_and_writes_nothing(limited):
    kind, server = limited
    # Under the limit: written.
    small = post(server, "/Shelf/k/put", 1000)
    assert small.status == 200 and small.json() == 1000, small.text

    # Over the limit, with a policy of two attempts then kill: the caller gets the failure.
    big = post(server, "/Shelf/k/put", BIG)
    assert big.status == 500, big.text
    body = big.json()
    assert body["source"] == "invocation" and big.headers["x-restate-error-source"] == "invocation"
    _check_message(kind, body["message"])
    assert _blob_size(server, "k") == 1000, "the old value must stay"
    rows = query(server, f"SELECT completion_failure FROM sys_invocation WHERE id = '{big.headers['x-restate-id']}'")
    assert rows[0]["completion_failure"].startswith("[500] ")


def test_an_oversized_state_value_is_retried_and_shows_in_last_failure(limited):
    kind, server = limited
    sent = post(server, "/Shelf/s/stash/send", BIG)
    assert sent.status == 202, sent.text
    iid = sent.json()["invocationId"]

    def failed_twice() -> dict | None:
        rows = query(server, "SELECT status, retry_count, last_failure, last_failure_error_code "
                             f"FROM sys_invocation WHERE id = '{iid}'")
        row = rows[0] if rows else None
        return row if row and row.get("last_failure") and (row.get("retry_count") or 0) >= 2 else None

    row = wait_until(failed_twice, 20, interval=0.05, what=f"{iid} to fail twice")
    assert row["status"] in ("backing-off", "running", "ready"), row
    assert row["last_failure_error_code"] == "RT0003", row
    _check_message(kind, row["last_failure"])
    assert _blob_size(server, "s") == 0, "nothing may be written"

    killed = http_request("PATCH", f"{server.admin_url}/invocations/{iid}/kill")
    assert killed.status == 200, killed.text


def test_the_admin_state_api_refuses_an_oversized_value(tmp_path, start_service):
    server = _limited_server("perdure", tmp_path).start()
    try:
        server.register(start_service(CATALOG).url)
        r = http_request("POST", f"{server.admin_url}/services/Shelf/state", json={
            "object_key": "a", "new_state": {"blob": [120] * (LIMIT + 1)}})
        assert r.status == 400
        assert r.json()["message"] == (f"state value for key 'blob' is {LIMIT + 1} bytes, over the limit of "
                                       f"{LIMIT} bytes (--max-state-value-size)")
        assert _blob_size(server, "a") == 0
        ok = http_request("POST", f"{server.admin_url}/services/Shelf/state", json={
            "object_key": "a", "new_state": {"blob": list(b'"xyz"')}})
        assert ok.status == 202
        assert wait_until(lambda: _blob_size(server, "a") == 3, 10, interval=0.05, what="the state to be set")
    finally:
        server.cleanup()


def test_sizes_on_the_command_line_take_binary_and_decimal_units():
    from perdure.server.config import ServerConfig, parse_size

    assert [parse_size(t) for t in ("65536", "64KiB", "64 KiB", "10MB", "1.5MiB", "2GiB")] == [
        65536, 65536, 65536, 10_000_000, 1_572_864, 2 * 1024**3]
    for bad in ("abc", "0", "-1", "5 parsecs", ""):
        with pytest.raises(ValueError):
            parse_size(bad)
    # A state value at the limit always fits in one frame from the deployment.
    assert ServerConfig(max_state_value_size=64 * 1024**2).frame_limit() == 64 * 1024**2 + 256 * 1024
    assert ServerConfig(max_state_value_size=1024).frame_limit() == 32 * 1024**2


def test_a_message_over_the_frame_limit_is_retried_as_rt0003(any_server, start_service):
    svc = start_service("tests.server.services.faulty_deployment:app", http2=False)
    any_server.register(svc.url, use_http_11=True)
    sent = post(any_server, "/Faulty/oversized/send")
    assert sent.status == 202, sent.text
    iid = sent.json()["invocationId"]

    def failed_twice() -> dict | None:
        rows = query(any_server, "SELECT retry_count, last_failure, last_failure_error_code "
                                 f"FROM sys_invocation WHERE id = '{iid}'")
        row = rows[0] if rows else None
        return row if row and row.get("last_failure") and (row.get("retry_count") or 0) >= 2 else None

    row = wait_until(failed_twice, 20, interval=0.05, what=f"{iid} to fail twice")
    assert row["last_failure_error_code"] == "RT0003", row
    assert "message size limit" in row["last_failure"] and "4294967295" in row["last_failure"], row
    assert http_request("PATCH", f"{any_server.admin_url}/invocations/{iid}/kill").status == 200

