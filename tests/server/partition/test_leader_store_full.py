"""The store's file system fills up while the log still has room: the leader keeps the batch it
made durable, applies it again once space is back, and never stops the partition (a stop would
crash-loop: recovery re-applies the same batch). The store lives on a small tmpfs mounted for
the test, the log on the ordinary disk."""

from __future__ import annotations

import asyncio
import errno
import os

import pytest

from perdure.protocol.framing import FrameDecoder
from perdure.protocol.ids import InvocationId
from perdure.protocol.messages import MessageType as T
from perdure.protocol.messages import pb
from perdure.server.partition.effects import InvokeOutcome
from perdure.server.partition.generated import records_pb2 as rec
from perdure.server.partition.leader import now_ms
from tests.server.partition.harness import open_leader, until
from tests.support.stack import tmpfs


@pytest.fixture
def small_fs(tmp_path):
    with tmpfs(tmp_path / "storefs", "2m") as mount:
        yield mount


def fill(path) -> None:
    with open(path, "ab") as f:
        while True:
            try:
                f.write(b"\0" * 65536)
                f.flush()
            except OSError as e:
                assert e.errno == errno.ENOSPC
                return


def scheduled_invoke(i: int) -> rec.Record:
    # Scheduled an hour ahead, so nothing is started; 16 KiB of input needs fresh store pages.
    return rec.Record(invoke=rec.Invoke(
        invocation_id=InvocationId.generate().to_bytes(), service="Greeter", handler="greet", service_type="service",
        input=b"x" * 16384, execute_at_ms=now_ms() + 3_600_000, completion_retention_ms=60_000,
        journal_retention_ms=60_000))


async def test_a_full_store_delays_applying_a_durable_batch_until_space_returns(tmp_path, small_fs, caplog):
    node = await open_leader(tmp_path, store_path=small_fs / "partition.db")
    log_, store, leader = node.log, node.store, node.leader
    leader.start()
    try:
        first = await leader.propose(scheduled_invoke(0))
        assert first.outcome == InvokeOutcome.CREATED
        fill(small_fs / "filler")

        records = [scheduled_invoke(i) for i in range(1, 4)]
        pending = [leader.propose(r) for r in records]
        await until(lambda: "the store is out of disk space" in caplog.text)
        assert log_.last_lsn == 4, "durable in the log"
        assert not any(f.done() for f in pending), "but not applied: the store is full"
        assert leader.fatal is None, "the partition did not stop"

        os.unlink(small_fs / "filler")
        results = await asyncio.wait_for(asyncio.gather(*pending), 10)
        assert [r.outcome for r in results] == [InvokeOutcome.CREATED] * 3
        for r in records:
            assert store.get_invocation(r.invoke.invocation_id).status == "scheduled"
        assert store.applied_lsn() == log_.last_lsn == 4
    finally:
        await node.close()


class RecordingRunner:
    """Stands in for the invoker, to see what the leader hands it and when: whether the store
    had committed the batch when a frame was sent, and each frame sent once."""

    def __init__(self, store) -> None:
        self.store = store
        self.sent: list[tuple[bytes, int, bytes, bool]] = []  # (invocation, attempt, frame, store in a transaction)
        self.writes_at: list[int] = []  # len(sent) at each write_now

    def start(self, invocation_id: bytes) -> None:
        pass

    def send(self, invocation_id: bytes, attempt: int, frame: bytes) -> None:
        self.sent.append((invocation_id, attempt, frame, self.store._db.in_transaction))

    def abort(self, invocation_id: bytes) -> None:
        pass

    def in_flight(self, invocation_id: bytes) -> bool:
        return True

    def write_now(self) -> None:
        self.writes_at.append(len(self.sent))

    async def close(self) -> None:
        pass


def _effect(iid: bytes, **kw) -> rec.Record:
    return rec.Record(effect=rec.InvokerEffect(invocation_id=iid, attempt=0, **kw))


def _run_step(iid: bytes, cid: int, value: bytes) -> list[rec.Record]:
    run = pb.RunCommandMessage(result_completion_id=cid, name="step")
    proposal = pb.ProposeRunCompletionMessage(result_completion_id=cid, value=value)
    return [
        _effect(iid, command=rec.JournalCommand(message_type=T.RUN_COMMAND, payload=run.SerializeToString())),
        _effect(iid, run_proposal=rec.RunProposal(completion_id=cid, payload=proposal.SerializeToString())),
    ]


def _completion_ids(runner: RecordingRunner) -> list[int]:
    out = []
    for _, _, frame, _ in runner.sent:
        for f in FrameDecoder().feed(frame):
            assert f.type == T.RUN_COMPLETION
            out.append(pb.RunCompletionNotificationMessage.FromString(f.payload).completion_id)
    return out


async def test_a_completion_leaves_before_the_commit_and_once_when_a_full_store_applies_it_again(
        tmp_path, small_fs, caplog):
    node = await open_leader(tmp_path, store_path=small_fs / "partition.db")
    log_, store, leader = node.log, node.store, node.leader
    await leader.invoker.close()
    runner = leader.invoker = RecordingRunner(store)
    leader.start()
    try:
        iid = InvocationId.generate().to_bytes()
        invoke = rec.Invoke(invocation_id=iid, service="Greeter", handler="greet", service_type="service",
                            input=b'"x"', completion_retention_ms=60_000, journal_retention_ms=60_000)
        await leader.propose(rec.Record(invoke=invoke))
        command, proposal = _run_step(iid, 1, b"1")
        leader.propose(command, wait=False)
        await leader.propose(proposal)
        # Sent while the batch's transaction was still open, then written out at once.
        assert [(s[0], s[1], s[3]) for s in runner.sent] == [(iid, 0, True)]
        assert runner.writes_at[-1] == 1
        assert _completion_ids(runner) == [1]

        fill(small_fs / "filler")
        command, proposal = _run_step(iid, 2, b"y" * 65536)  # needs fresh store pages
        leader.propose(command, wait=False)
        pending = leader.propose(proposal)
        await until(lambda: "the store is out of disk space" in caplog.text)
        os.unlink(small_fs / "filler")
        await asyncio.wait_for(pending, 10)
        assert _completion_ids(runner) == [1, 2], "each completion reaches the attempt once"
        assert [e.entry_type for e in store.journal(iid)][-2:] == [T.RUN_COMMAND, T.RUN_COMPLETION]
        assert store.applied_lsn() == log_.last_lsn
    finally:
        await node.close()
