"""A full disk, on a real small file system (a size-limited tmpfs mounted for the test): the
ingress refuses new requests with 503 and a message saying why, what was acknowledged before
stays intact and keeps running, and intake resumes once space is freed. Both ways of running
out are covered: free space below `--min-free-disk`, and ENOSPC met by the log's append with
the reserve turned off (the server must neither crash nor corrupt its log)."""

from __future__ import annotations

import errno
import os

import pytest

from tests.server.lifecycle_helpers import LIFECYCLE, post, query, status
from tests.support import PerdureServer, http_get, wait_until
from tests.support.stack import tmpfs

MiB = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path):
    """A 32 MiB tmpfs mounted on a directory of the test, unmounted afterwards."""
    with tmpfs(tmp_path / "disk", "32m") as mount:
        yield mount


def free_bytes(path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(path, leave: int) -> None:
    """Grow the file `path` until at most `leave` bytes are free on its file system (or the
    file system says ENOSPC)."""
    with open(path, "ab") as f:
        while (room := free_bytes(path.parent) - leave) > 0:
            try:
                f.write(b"\0" * min(MiB, room))
                f.flush()
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    return
                raise


def start(small_disk, tmp_path, start_service, reserve: str) -> PerdureServer:
    server = PerdureServer(small_disk / "data", log_dir=tmp_path / "logs", extra_args=["--min-free-disk", reserve])
    server.start()
    svc = start_service(LIFECYCLE, env={"PERDURE_TEST_EVENTS": str(tmp_path / "events")})
    server.register(svc.url)
    return server


def assert_refused_for_lack_of_space(answer) -> None:
    assert answer.status == 503, answer.text
    assert answer.headers.get("content-type", "").startswith("application/json")
    assert "out of disk space" in answer.json()["message"]


def test_below_the_reserve_new_requests_get_503_and_accepted_work_carries_on(small_disk, tmp_path, start_service):
    server = start(small_disk, tmp_path, start_service, reserve="4MiB")
    try:
        done = [post(server, "/Worker/work", f"k{i}").headers["x-restate-id"] for i in range(5)]
        # Accepted now, runs in three seconds: while the disk is full.
        delayed = post(server, "/Worker/work/send?delay=3s", "delayed").json()["invocationId"]

        fill(small_disk / "filler", leave=MiB)
        refused = post(server, "/Worker/work", "refused")
        assert_refused_for_lack_of_space(refused)
        assert "below the reserve of 4194304 bytes" in refused.json()["message"]
        assert refused.headers.get("retry-after") == "1"
        for i, iid in enumerate(done):
            assert post(server, f"/restate/output/{iid}", method="GET").json() == f"worked k{i}"
        wait_until(lambda: status(server, delayed) == "completed", 30, interval=0.1,
                   what="the delayed invocation to run on the reserve")
        assert post(server, f"/restate/output/{delayed}", method="GET").json() == "worked delayed"

        (small_disk / "filler").unlink()
        wait_until(lambda: post(server, "/Worker/work", "after").status == 200, 20, interval=0.1,
                   what="intake to resume once space is freed")
        worked = query(server, "SELECT count(*) AS n FROM sys_invocation WHERE target_service_name = 'Worker'")
        assert worked == [{"n": 7}], "five before, the delayed one and the one after; not the refused one"
    finally:
        server.cleanup()


def test_enospc_in_the_log_is_a_503_and_the_log_survives_it(small_disk, tmp_path, start_service):
    server = start(small_disk, tmp_path, start_service, reserve="0")
    try:
        done = [post(server, "/Worker/work", f"k{i}").headers["x-restate-id"] for i in range(3)]
        fill(small_disk / "filler", leave=0)
        # Bigger than any page a file system keeps spare at a file's end: the append must fail.
        big = "x" * (256 * 1024)
        for _ in range(2):
            assert_refused_for_lack_of_space(post(server, "/Worker/work", big))
        assert http_get(server.admin_url + "/health").status == 200, "the server is still up"

        (small_disk / "filler").unlink()
        after = post(server, "/Worker/work", "after")
        assert after.status == 200 and after.json() == "worked after"
        server.restart(hard=True)  # SIGKILL: the log the failed appends left behind must recover
        for i, iid in enumerate(done):
            assert post(server, f"/restate/output/{iid}", method="GET").json() == f"worked k{i}"
        assert post(server, f"/restate/output/{after.headers['x-restate-id']}", method="GET").json() == "worked after"
        worked = query(server, "SELECT count(*) AS n FROM sys_invocation WHERE target_service_name = 'Worker'")
        assert worked == [{"n": 4}], "the refused requests left nothing behind"
    finally:
        server.cleanup()
