"""The store's write-ahead log is checkpointed by a thread of its own (not inside a COMMIT on
the event loop's thread): committed pages reach the database file itself."""

import shutil
import sqlite3
import time

from perdure.server.partition.store import CHECKPOINT_EVERY_COMMITS, Store


def _applied_lsn_in_database_file(path, scratch) -> int | None:
    """The applied LSN read from a copy of the database file alone, without its WAL."""
    shutil.copyfile(path, scratch)
    try:
        db = sqlite3.connect(scratch)
        try:
            row = db.execute("SELECT v FROM meta WHERE k='applied_lsn'").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError:  # copied while the checkpoint was writing: read again
        return None
    finally:
        for suffix in ("", "-wal", "-shm"):
            scratch.with_name(scratch.name + suffix).unlink(missing_ok=True)
    return row[0] if row else None


def test_commits_reach_the_database_file_without_a_checkpoint_on_the_writer(tmp_path):
    path = tmp_path / "partition.db"
    store = Store(path)
    assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    for lsn in range(1, CHECKPOINT_EVERY_COMMITS + 1):
        with store.transaction():
            store.set_applied_lsn(lsn)
    deadline = time.monotonic() + 10
    seen = None
    while time.monotonic() < deadline:
        seen = _applied_lsn_in_database_file(path, tmp_path / "copy.db")
        if seen == CHECKPOINT_EVERY_COMMITS:
            break
        time.sleep(0.02)  # polling the file for the condition, not waiting a fixed time
    assert seen == CHECKPOINT_EVERY_COMMITS
    store.close()


def test_an_idle_store_is_checkpointed_after_a_few_commits(tmp_path):
    path = tmp_path / "partition.db"
    store = Store(path)
    with store.transaction():
        store.set_applied_lsn(7)  # one commit, far fewer than CHECKPOINT_EVERY_COMMITS
    deadline = time.monotonic() + 10
    seen = None
    while time.monotonic() < deadline:
        seen = _applied_lsn_in_database_file(path, tmp_path / "copy.db")
        if seen == 7:
            break
        time.sleep(0.02)
    assert seen == 7
    store.close()
