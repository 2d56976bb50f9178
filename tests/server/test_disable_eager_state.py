"""`RESTATE_WORKER__INVOKER__DISABLE_EAGER_STATE=true` (the SDK test suite's `lazyState`
configuration): no state travels with an attempt's start, so a handler's state reads are
journaled as GetLazyState commands and answered one by one; the handler's results are the
same. Checked against the real Restate server, which reads the same variable."""

from __future__ import annotations

import pytest

from tests.support import PerdureServer, RestateServer, http_request

INTROSPECTED = "tests.server.services.introspected:app"


def read_commands(server, key: str) -> list[str]:
    r = http_request(
        "POST", server.admin_url + "/query", headers={"accept": "application/json"}, timeout=30,
        json={"query": "SELECT j.entry_type FROM sys_journal j JOIN sys_invocation i ON i.id = j.id "
                       f"WHERE i.target = 'Counter/{key}/add' ORDER BY i.created_at, j.index"})
    assert r.status == 200, r.text
    return [row["entry_type"] for row in r.json()["rows"] if "State" in row["entry_type"]]


@pytest.mark.parametrize("kind", ["perdure", "restate"])
@pytest.mark.parametrize("lazy", [True, False], ids=["disabled", "default"])
def test_state_reads_are_lazy_when_eager_state_is_disabled(kind, lazy, start_service, tmp_path):
    env = {"RESTATE_WORKER__INVOKER__DISABLE_EAGER_STATE": "true"} if lazy else {}
    cls = PerdureServer if kind == "perdure" else RestateServer
    server = cls(tmp_path / kind, log_dir=tmp_path / "logs", env=env).start()
    try:
        server.register(start_service(INTROSPECTED).url)
        assert server.call("Counter", "add", 2, key="k").json() == 2
        assert server.call("Counter", "add", 3, key="k").json() == 5  # reads what the first wrote
        # a lazy read is a command and the notification that answers it; an eager one is
        # answered from the state the attempt started with
        read = ["Command: GetLazyState", "Notification: GetLazyState"] if lazy else ["Command: GetEagerState"]
        assert read_commands(server, "k") == [*read, "Command: SetState"] * 2
    finally:
        server.cleanup()
