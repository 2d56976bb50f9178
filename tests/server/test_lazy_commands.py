"""Commands that start nothing and that nobody waits for (a step's RunCommand, the state
commands of a keyed handler) share the next record's group commit instead of starting one.
A handler that sets state and then runs a step pays one log append for its commands and the
step's result, not two: seen in the log's own batch metrics."""

from __future__ import annotations

import re

from tests.server.lifecycle_helpers import post, query
from tests.support import http_get

SERVICE = "tests.server.services.lazy_commands:app"
N = 20


def _batches_and_records(server) -> tuple[int, int]:
    text = http_get(server.admin_url + "/metrics", timeout=5).text
    count = re.search(r"^perdure_log_append_batch_records_count (\S+)$", text, re.M)
    total = re.search(r"^perdure_log_append_batch_records_sum (\S+)$", text, re.M)
    return int(float(count.group(1))), int(float(total.group(1)))


def test_state_and_run_commands_ride_on_the_next_commit(perdure_server, start_service):
    svc = start_service(SERVICE)
    svc.register_on(perdure_server)
    assert post(perdure_server, "/Steps/warm/go", 0).json() == 1
    batches0, records0 = _batches_and_records(perdure_server)
    for n in range(N):
        r = post(perdure_server, f"/Steps/k{n}/go", n)
        assert r.status == 200 and r.json() == 1
    batches, records = _batches_and_records(perdure_server)
    # Per invocation: Invoke | SetState+RunCommand (one read, one record), run result |
    # SetState+Output+End.
    assert records - records0 == 4 * N
    # Three commits each; a lazy record whose partner took longer than the linger (5 ms)
    # goes alone, so allow a few. Without lazy state commands it is four each.
    assert batches - batches0 <= 3 * N + N // 4, (batches - batches0, N)
    rows = query(perdure_server, "SELECT key, value_utf8 FROM state WHERE service_name = 'Steps' "
                                 "AND service_key = 'k3' ORDER BY key")
    assert rows == [{"key": "after", "value_utf8": "1"}, {"key": "before", "value_utf8": "3"}]
