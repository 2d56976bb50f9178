"""Drive the partition state machine record by record, with a fake clock and no I/O; and,
for the leader's own tests, a real leader on a real log and store (`open_leader`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from perdure.protocol.framing import FrameDecoder
from perdure.protocol.ids import InvocationId
from perdure.protocol.messages import message_type_of, pb
from perdure.server.config import ServerConfig
from perdure.server.invoker.invoker import Invoker
from perdure.server.log.local import LocalLog, LocalLogConfig
from perdure.server.partition.effects import SendToAttempt
from perdure.server.partition.generated import records_pb2 as rec
from perdure.server.partition.leader import Leader
from perdure.server.partition.state_machine import ApplyResult, StateMachine
from perdure.server.partition.store import Store
from perdure.server.schema import Schema

__all__ = ["DAY_MS", "Harness", "LeaderNode", "frames_to", "kinds", "open_leader", "until"]

DAY_MS = 86_400_000


class Harness:
    def __init__(self, path) -> None:
        self.store = Store(path)
        self.sm = StateMachine(self.store)
        self.lsn = 0
        self.clock = 1_700_000_000_000
        self.records: list[bytes] = []  # every applied record, for replay tests

    def apply(self, record: rec.Record) -> ApplyResult:
        self.lsn += 1
        self.clock += 1
        record.timestamp_ms = self.clock
        with self.store.transaction():
            result = self.sm.apply(self.lsn, record)
            self.store.set_applied_lsn(self.lsn)
        self.records.append(record.SerializeToString())
        return result

    def invoke(self, service="Greeter", handler="greet", key="", body=b'"x"', service_type="service",
               handler_type="", idem="", iid: InvocationId | None = None, is_send=False, execute_at=0,
               caller: tuple[bytes, int] | None = None, retention_ms=DAY_MS, journal_retention_ms=DAY_MS):
        iid = iid or InvocationId.generate()
        invoke = rec.Invoke(
            invocation_id=iid.to_bytes(), service=service, handler=handler, key=key, input=body,
            service_type=service_type, handler_type=handler_type, idempotency_key=idem, is_send=is_send,
            execute_at_ms=execute_at, completion_retention_ms=retention_ms,
            journal_retention_ms=journal_retention_ms)
        if caller is not None:
            invoke.caller.invocation_id, invoke.caller.result_completion_id = caller
        r = self.apply(rec.Record(invoke=invoke))
        return iid.to_bytes(), r

    def workflow(self, key="w", handler="run", handler_type="workflow"):
        """Start an invocation of the `Signup` workflow (its run, or a shared handler)."""
        iid = InvocationId.for_workflow("Signup", key) if handler_type == "workflow" else None
        return self.invoke(service="Signup", handler=handler, key=key, service_type="workflow",
                           handler_type=handler_type, iid=iid)

    def effect(self, iid: bytes, attempt: int | None = None, **kw) -> ApplyResult:
        if attempt is None:
            row = self.store.get_invocation(iid)
            attempt = row.attempt if row is not None else 0
        return self.apply(rec.Record(effect=rec.InvokerEffect(invocation_id=iid, attempt=attempt, **kw)))

    def command(self, iid: bytes, msg, attempt: int | None = None, **extra) -> ApplyResult:
        return self.effect(iid, attempt, command=rec.JournalCommand(
            message_type=message_type_of(msg), payload=msg.SerializeToString(), **extra))

    def run_proposal(self, iid: bytes, cid: int, value: bytes, attempt: int | None = None, ack: bool = False):
        m = pb.ProposeRunCompletionMessage(result_completion_id=cid, value=value)
        return self.effect(iid, attempt, run_proposal=rec.RunProposal(
            completion_id=cid, payload=m.SerializeToString(), requested_ack=ack))

    def output(self, iid: bytes, value: bytes, attempt: int | None = None) -> ApplyResult:
        self.command(iid, pb.OutputCommandMessage(value=pb.Value(content=value)), attempt)
        return self.effect(iid, attempt, end=rec.End())

    def fail_output(self, iid: bytes, code: int, message: str) -> ApplyResult:
        self.command(iid, pb.OutputCommandMessage(failure=pb.Failure(code=code, message=message)))
        return self.effect(iid, end=rec.End())

    def suspend_v6(self, iid: bytes, completions=(), signals=()) -> ApplyResult:
        sus = pb.SuspensionMessageV6(waiting_completions=list(completions), waiting_signals=list(signals))
        return self.effect(iid, suspended=rec.Suspended(payload=sus.SerializeToString(), protocol_version=6))

    def manage(self, iid: bytes, op: int, deployment: str = "") -> ApplyResult:
        return self.apply(rec.Record(manage=rec.ManageInvocation(
            invocation_id=iid, op=op, resume_deployment_id=deployment)))

    def status(self, iid: bytes) -> str | None:
        row = self.store.get_invocation(iid)
        return row.status if row is not None else None

    def last_entry(self, iid: bytes, message_class):
        """The last journal entry of `iid`, decoded as `message_class`."""
        entry = self.store.journal(iid)[-1]
        assert entry.entry_type == message_type_of(message_class()), hex(entry.entry_type)
        return message_class.FromString(entry.raw)

    def close(self) -> None:
        self.store.close()


def kinds(result: ApplyResult) -> list[type]:
    return [type(e) for e in result.effects]


def frames_to(result: ApplyResult, iid: bytes) -> list:
    """The frames `result` sends to the live attempt of `iid`, decoded."""
    out = []
    for e in result.effects:
        if isinstance(e, SendToAttempt) and e.invocation_id == iid:
            out.extend(FrameDecoder().feed(e.frame))
    return out


@dataclass
class LeaderNode:
    """A leader on a real log and store with an invoker (no ingress, no admin)."""

    log: LocalLog
    store: Store
    schema: Schema
    leader: Leader

    async def close(self) -> None:
        await self.leader.invoker.close()
        await self.leader.close()
        await self.log.close()
        self.store.close()
        self.schema.close()


async def open_leader(directory: Path, *, store_path: Path | None = None,
                      log_config: LocalLogConfig | None = None) -> LeaderNode:
    """Open (or reopen) a node's log, store and schema under `directory`; not started."""
    log_ = await LocalLog.open(directory / "log", log_config)
    store = Store(store_path or directory / "partition.db")
    schema = Schema(directory / "metadata.db")
    leader = Leader(log_, store, StateMachine(store))
    leader.invoker = Invoker(leader, schema, ServerConfig(data_dir=directory))
    return LeaderNode(log_, store, schema, leader)


async def until(condition, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)  # polling an observable state, not a delay to wait out
