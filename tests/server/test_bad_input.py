"""Bad input at every edge gets a clear error and loses nothing. The `any_server` tests run the
same requests against the real Restate server: statuses (and messages where Restate's are part of
the API) must agree."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from urllib.parse import quote

from perdure.protocol.ids import InvocationId
from tests.server.lifecycle_helpers import post, query
from tests.support import free_port, http_request

CATALOG = "tests.server.services.official_catalog:app"


def test_garbage_frames_from_a_deployment_fail_the_attempt_and_the_invocation_is_retried(
        perdure_server, start_service, tmp_path):
    events = tmp_path / "attempts.txt"
    svc = start_service("tests.server.services.faulty_deployment:app", http2=False,
                        env={"PERDURE_TEST_EVENTS": str(events)})
    perdure_server.register(svc.url, use_http_11=True)

    r = perdure_server.call("Faulty", "echo", {"kept": "intact"})

    assert r.status == 200, r.text
    assert r.json() == {"kept": "intact"}
    assert events.read_text().splitlines() == ["attempt 1", "attempt 2", "attempt 3", "attempt 4"]
    log = perdure_server.log_text()
    assert "over the limit" in log          # attempt 1: an impossible frame length
    assert "0x7abc" in log                  # attempt 2: an unknown message type
    assert "without End, Suspension or Error" in log  # attempt 3: cut in the middle of a frame


def test_wrong_method_is_405(perdure_server, start_service):
    svc = start_service("tests.interop.services.official_greeter:app")
    perdure_server.register(svc.url)
    from tests.support import http_request

    r = http_request("DELETE", f"{perdure_server.ingress_url}/Greeter/greet")
    assert r.status == 405 and r.json()["code"] == 405


def _closed_port() -> int:
    port = free_port()
    with socket.socket() as s:  # make sure nothing listens there
        assert s.connect_ex(("127.0.0.1", port)) != 0
    return port


def test_registering_an_unreachable_deployment_is_400_with_the_reason(perdure_server):
    port = _closed_port()
    r = perdure_server.admin("POST", "/deployments", json={"uri": f"http://127.0.0.1:{port}"})
    assert r.status == 400
    msg = r.json()["message"]
    assert f"127.0.0.1:{port}" in msg and ("refused" in msg.lower() or "connect" in msg.lower())
    assert perdure_server.deployments() == []


def test_registering_something_that_is_not_a_deployment_is_400_with_the_reason(perdure_server, start_service):
    # The admin API itself is an HTTP server that does not speak discovery.
    r = perdure_server.admin("POST", "/deployments", json={"uri": perdure_server.ingress_url, "use_http_11": True})
    assert r.status == 400
    assert "discover" in r.json()["message"]
    assert perdure_server.deployments() == []


def test_registration_body_that_is_not_json_is_400(perdure_server):
    from tests.support import http_post

    r = http_post(f"{perdure_server.admin_url}/deployments", body=b"{not json",
                  headers={"content-type": "application/json"})
    assert r.status == 400 and "JSON" in r.json()["message"]


def _ingress_error(r, status: int) -> dict:
    assert r.status == status, r.text
    assert r.headers["x-restate-error-source"] == "ingress"
    body = r.json()
    assert body["code"] == status and body["source"] == "ingress"
    return body


def _invocations(server) -> int:
    return query(server, "SELECT count(*) AS n FROM sys_invocation")[0]["n"]


def test_unknown_targets_and_keys_that_do_not_fit_the_service_type(any_server, start_service):
    any_server.register(start_service(CATALOG).url)

    assert "'Nope'" in _ingress_error(post(any_server, "/Nope/h", "x"), 404)["message"]
    assert "'Nope'" in _ingress_error(post(any_server, "/restate/send/Nope/h", "x"), 404)["message"]
    assert "'nope'" in _ingress_error(post(any_server, "/Catalog/nope", "x"), 404)["message"]
    assert "'nope'" in _ingress_error(post(any_server, "/Shelf/k/nope"), 404)["message"]
    # A virtual object or workflow needs a key; a plain service takes none.
    for path, body in [("/Shelf/put", 1), ("/Order/run", {"name": "a", "quantity": 1}), ("/Catalog/k/ping", None),
                       ("/Catalog/a/b/c", None), ("/restate/call/Shelf/put", 1),
                       ("/restate/call/Catalog/k/ping", None), ("/restate/send/Order/run", None)]:
        _ingress_error(post(any_server, path, body), 400)
    assert http_request("DELETE", f"{any_server.ingress_url}/Catalog/ping").status == 405
    assert _invocations(any_server) == 0, "a refused request creates no invocation"


def test_bad_and_unknown_invocation_ids(any_server):
    unknown = str(InvocationId.generate())
    for path in ("/restate/attach/garbage", "/restate/output/garbage", "/restate/invocation/garbage/attach",
                 "/restate/invocation/garbage/output"):
        body = _ingress_error(http_request("GET", any_server.ingress_url + path), 400)
        assert body["message"].startswith("bad invocation id 'garbage': "), body
    body = _ingress_error(http_request("GET", f"{any_server.ingress_url}/restate/attach/inv_1garbage"), 400)
    assert body["message"].startswith("bad invocation id 'inv_1garbage': ")

    attach = http_request("GET", f"{any_server.ingress_url}/restate/attach/{unknown}")
    assert attach.status == 404 and attach.json() == {"code": 404, "message": "not found", "source": "invocation"}
    output = http_request("GET", f"{any_server.ingress_url}/restate/output/{unknown}")
    assert output.json() == _ingress_error(output, 404) == {"code": 404, "message": "invocation not found",
                                                            "source": "ingress"}

    for op in ("cancel", "kill", "purge", "purge-journal", "pause", "resume", "restart-as-new"):
        bad = http_request("PATCH", f"{any_server.admin_url}/invocations/garbage/{op}")
        assert bad.status == 400
        assert bad.json()["message"].startswith("The request field 'invocation_id' is invalid. Reason: ")
        missing = http_request("PATCH", f"{any_server.admin_url}/invocations/{unknown}/{op}")
        assert missing.status == 404
        assert missing.json()["message"] == f"The requested invocation '{unknown}' does not exist"
    for raw in ("garbage", "sign_1garbage"):
        for op in ("resolve", "reject"):
            r = http_request("POST", f"{any_server.ingress_url}/restate/awakeables/{raw}/{op}", b"1")
            assert _ingress_error(r, 400)["message"].startswith(f"bad awakeable id '{raw}': ")
    assert http_request("GET", f"{any_server.ingress_url}/restate/awakeables/garbage/resolve").status == 405
    assert http_request("DELETE", f"{any_server.admin_url}/invocations/garbage").status == 400
    # The deprecated DELETE stores the request without looking the invocation up.
    assert http_request("DELETE", f"{any_server.admin_url}/invocations/{unknown}").status == 202
    bad_dp = http_request("GET", f"{any_server.admin_url}/deployments/garbage")
    assert bad_dp.status == 400 and "garbage" in bad_dp.text
    missing_dp = http_request("GET", f"{any_server.admin_url}/deployments/dp_10I2opWfXQhHtjRu9ao6shz")
    assert missing_dp.status == 404
    assert missing_dp.json()["message"] == "The requested deployment 'dp_10I2opWfXQhHtjRu9ao6shz' does not exist"
    missing_svc = http_request("GET", f"{any_server.admin_url}/services/Nope")
    assert missing_svc.status == 404 and missing_svc.json()["message"] == "The requested service 'Nope' does not exist"


# (delay, milliseconds) that both servers accept: ISO-8601 in any case, friendly forms, weeks,
# fractions and sub-millisecond units.
_GOOD_DELAYS = [("10s", 10_000), ("PT10S", 10_000), ("pt10s", 10_000), ("1h30m", 5_400_000),
                ("1h 30m", 5_400_000), ("10 sec", 10_000), ("10secs", 10_000), ("500ms", 500), ("1.5s", 1_500),
                ("PT0.5S", 500), ("0", 0), ("0s", 0), ("P1D", 86_400_000), ("1 hour", 3_600_000), ("1w", 604_800_000),
                ("P1W", 604_800_000), ("1us", 0), ("1ns", 0), ("1h  30m", 5_400_000), ("1 h 30 m", 5_400_000),
                ("2 hours, 5 mins", 7_500_000), ("1.5h", 5_400_000), ("PT1.5H", 5_400_000)]
# Non-numeric, unit-less, negative, calendar units, upper-case friendly units, padding and
# absurdly large values.
_BAD_DELAYS = ["", "abc", "10", "1h30", "PT", "-5s", "-1", "-PT5S", "10S", " 10s", "10s5", "1y", "1mo", "P1M",
               "P1Y", "10000y", "100000000000d", "99999999999999999999s"]
# Not in the list: delays that land after the year 9999 but parse (`3000000d`). perdure answers
# 400; Restate 1.7.12's ingress panics while writing `executionTime` and drops the connection.


def _execution_ms(payload: dict) -> int:
    stamp = datetime.strptime(payload["executionTime"][:23], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
    return int(stamp.timestamp() * 1000)


def test_send_delays_accepted_and_refused_like_restate(any_server, start_service):
    any_server.register(start_service(CATALOG).url)
    for delay, ms in _GOOD_DELAYS:
        before = datetime.now(UTC).timestamp() * 1000
        r = post(any_server, f"/Catalog/ping/send?delay={quote(delay)}")
        assert r.status == 202, (delay, r.text)
        when = _execution_ms(r.json())
        assert before + ms - 1000 <= when <= before + ms + 5000, (delay, r.json())
    created = _invocations(any_server)
    assert created == len(_GOOD_DELAYS)
    for delay in _BAD_DELAYS:
        body = _ingress_error(post(any_server, f"/Catalog/ping/send?delay={quote(delay)}"), 400)
        assert "delay" in body["message"], (delay, body)
    body = _ingress_error(post(any_server, "/Catalog/ping?delay=10s"), 400)
    assert "delay" in body["message"] and "send" in body["message"]
    assert _invocations(any_server) == created, "a refused delay creates no invocation"


def _post_raw(server, path: str, length: int) -> tuple[int, bytes]:
    """POST a body of `length` bytes over a plain socket and return (status, head of the answer).
    A server may answer 413 and close before reading the whole body; urllib would only report the
    broken pipe."""
    with socket.create_connection((server.host, server.ingress_port), timeout=30) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
                  f"content-length: {length}\r\n\r\n".encode())
        chunk = b"x" * (1 << 20)
        try:
            sent = 0
            while sent < length:
                n = min(len(chunk), length - sent)
                s.sendall(chunk[:n])
                sent += n
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: its answer is already on the way
        answer = b""
        while b"\r\n" not in answer:
            data = s.recv(4096)
            if not data:
                break
            answer += data
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return status, answer


def test_a_body_over_32_mib_is_413_and_one_under_it_is_accepted(any_server, start_service):
    any_server.register(start_service(CATALOG).url)
    limit = 32 * 1024 * 1024  # Restate 1.7's default ingress request-size-limit, and ours
    status, answer = _post_raw(any_server, "/Catalog/raw/send?delay=1d", limit + 1)
    assert status == 413, answer[:300]
    assert _invocations(any_server) == 0
    # 16 MiB: over perdure's old 10 MiB limit. Delayed by a day, so only the ingress and the
    # log see it.
    big = b'"' + b"x" * (16 * 1024 * 1024) + b'"'
    r = post(any_server, "/Catalog/raw/send?delay=1d", big, headers={"content-type": "application/json"})
    assert r.status == 202, r.text[:300]
    assert _invocations(any_server) == 1
