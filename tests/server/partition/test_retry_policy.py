"""The retry policy an invocation carries from ingress or its caller (handler over service over
server default) decides its backoff and what happens after its max attempts."""

from __future__ import annotations

from perdure.protocol.ids import InvocationId
from perdure.protocol.messages import pb
from perdure.server.partition.effects import Respond, ScheduleRetry, StartAttempt
from perdure.server.partition.generated import records_pb2 as rec
from perdure.server.partition.retry import OnMaxAttempts, RetryPolicy
from perdure.server.partition.status import COMPLETED, INVOKED, PAUSED
from perdure.server.schema import HandlerInfo, ServiceInfo

POLICY = RetryPolicy(initial_interval_ms=10, factor=3.0, max_interval_ms=100, max_attempts=4)


def invoke_with(h, policy: RetryPolicy | None) -> bytes:
    iid = InvocationId.generate()
    invoke = rec.Invoke(invocation_id=iid.to_bytes(), service="Greeter", handler="greet", input=b'"x"',
                        service_type="service")
    if policy is not None:
        invoke.retry_policy.CopyFrom(policy.to_record())
    h.apply(rec.Record(invoke=invoke))
    return iid.to_bytes()


def fail(h, iid: bytes, message: str = "boom"):
    return h.effect(iid, failed=rec.AttemptFailed(code=503, message=message))


def test_the_invocations_own_policy_sets_the_backoff_and_pauses_after_max_attempts(h):
    iid = invoke_with(h, POLICY)
    delays = []
    for _ in range(3):
        r = fail(h, iid)
        (retry,) = [e for e in r.effects if isinstance(e, ScheduleRetry)]
        delays.append(retry.due_at - h.clock)
    assert delays == [10, 30, 90]
    r = fail(h, iid)  # the fourth attempt was the last
    assert not [e for e in r.effects if isinstance(e, ScheduleRetry)]
    assert h.status(iid) == PAUSED


def test_kill_on_max_attempts_completes_with_the_last_failure(h):
    iid = invoke_with(h, RetryPolicy(initial_interval_ms=5, max_attempts=2, on_max_attempts=OnMaxAttempts.KILL))
    fail(h, iid, "first")
    r = fail(h, iid, "second")
    (respond,) = [e for e in r.effects if isinstance(e, Respond)]
    assert (respond.success, respond.code, respond.message) == (False, 503, "second")
    assert h.status(iid) == COMPLETED


def test_an_invocation_without_a_policy_uses_the_server_default(h):
    iid = invoke_with(h, None)
    r = fail(h, iid)
    (retry,) = [e for e in r.effects if isinstance(e, ScheduleRetry)]
    assert retry.due_at - h.clock == h.sm.retry_policy.initial_interval_ms


def test_a_resumed_paused_invocation_gets_a_fresh_round_of_its_own_policy(h):
    iid = invoke_with(h, RetryPolicy(initial_interval_ms=7, max_attempts=1))
    fail(h, iid)
    assert h.status(iid) == PAUSED
    r = h.manage(iid, rec.RESUME)
    assert [type(e) for e in r.effects] == [StartAttempt] and h.status(iid) == INVOKED
    fail(h, iid)
    assert h.status(iid) == PAUSED


def test_a_callee_gets_the_policy_its_caller_resolved(h):
    caller = invoke_with(h, None)
    call = pb.CallCommandMessage(service_name="Greeter", handler_name="greet", parameter=b'"Bob"',
                                 invocation_id_notification_idx=1, result_completion_id=2)
    r = h.command(caller, call, target_service_type="service", target_retry_policy=POLICY.to_record())
    (start,) = [e for e in r.effects if isinstance(e, StartAttempt)]
    callee = h.store.get_invocation(start.invocation_id)
    assert h.sm.retry_policy_of(callee) == POLICY


def test_a_handlers_policy_overrides_its_service_which_overrides_the_default():
    handler = HandlerInfo(name="h", ty="", retry_max_attempts=2, retry_on_max_attempts="kill")
    service = ServiceInfo(name="S", ty="service", revision=1, deployment_id="dp", handlers={"h": handler},
                          retry_initial_interval_ms=10, retry_max_attempts=5)
    resolved = service.retry_policy(handler, RetryPolicy())
    assert resolved == RetryPolicy(initial_interval_ms=10, factor=2.0, max_interval_ms=60_000, max_attempts=2,
                                   on_max_attempts=OnMaxAttempts.KILL)
    assert RetryPolicy.from_record(resolved.to_record()) == resolved
