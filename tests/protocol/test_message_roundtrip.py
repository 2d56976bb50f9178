"""Every message type survives encode -> frame -> decode with every field set."""

from __future__ import annotations

import pytest
from google.protobuf.message import Message

from perdure.protocol import (
    FrameDecoder,
    MessageType,
    ProtocolVersion,
    decode_message,
    encode_message,
    message_class,
    message_type_of,
)
from perdure.protocol.messages import pb

INVOCATION_ID = "inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz"
INVOCATION_ID_BYTES = bytes.fromhex("493c42ed1c3cf1bc018e5257b998007db7f4f3f47e809584")


def failure() -> pb.Failure:
    return pb.Failure(
        code=409,
        message="already completed",
        metadata=[pb.FailureMetadata(key="k1", value="v1"), pb.FailureMetadata(key="k2", value="")],
    )


def value(text: str = "payload") -> pb.Value:
    return pb.Value(content=text.encode())


def future_tree() -> pb.Future:
    """Three levels deep, every leaf kind and every combinator."""
    return pb.Future(
        waiting_completions=[1, 5],
        waiting_signals=[1, 17],
        waiting_named_signals=["approved"],
        combinator_type=pb.ALL_SUCCEEDED_OR_FIRST_FAILED,
        nested_futures=[
            pb.Future(waiting_completions=[2], combinator_type=pb.FIRST_COMPLETED),
            pb.Future(
                waiting_signals=[18],
                combinator_type=pb.FIRST_SUCCEEDED_OR_ALL_FAILED,
                nested_futures=[
                    pb.Future(waiting_named_signals=["a", "b"], combinator_type=pb.ALL_COMPLETED)
                ],
            ),
        ],
    )


IDEMPOTENT_TARGET = pb.IdempotentRequestTarget(
    service_name="Counter",
    service_key="obj-1",
    handler_name="add",
    idempotency_key="req-42",
    scope="tenant-a",
)
WORKFLOW_TARGET = pb.WorkflowTarget(workflow_name="Signup", workflow_key="wf-1", scope="tenant-b")

# Several samples per type so that each oneof member appears at least once.
SAMPLES: dict[MessageType, list[Message]] = {
    MessageType.START: [
        pb.StartMessage(
            id=INVOCATION_ID_BYTES,
            debug_id=INVOCATION_ID,
            known_entries=7,
            state_map=[
                pb.StartMessage.StateEntry(key=b"a", value=b"1"),
                pb.StartMessage.StateEntry(key=b"empty", value=b""),
                pb.StartMessage.StateEntry(key=b"\x00bin", value=b"\xff\xfe"),
            ],
            partial_state=True,
            key="obj-1",
            retry_count_since_last_stored_entry=3,
            duration_since_last_stored_entry=611,
            random_seed=2**64 - 1,
            scope="tenant-a",
            limit_key="limit-1",
            idempotency_key="req-42",
        )
    ],
    MessageType.SUSPENSION: [pb.SuspensionMessage(awaiting_on=future_tree())],
    MessageType.ERROR: [
        pb.ErrorMessage(
            code=500,
            message="ValueError('flaky side effect')",
            stacktrace="Traceback (most recent call last):\n...",
            related_command_index=1,
            related_command_name="flaky",
            related_command_type=MessageType.RUN_COMMAND,
            next_retry_delay=50,
            behavior=pb.PAUSE,
        )
    ],
    MessageType.END: [pb.EndMessage()],
    MessageType.COMMAND_ACK: [pb.CommandAckMessage(command_index=12)],
    MessageType.PROPOSE_RUN_COMPLETION: [
        pb.ProposeRunCompletionMessage(result_completion_id=3, value=b'"ok"'),
        pb.ProposeRunCompletionMessage(result_completion_id=4, failure=failure()),
    ],
    MessageType.AWAITING_ON: [
        pb.AwaitingOnMessage(awaiting_on=future_tree(), executing_side_effects=True)
    ],
    MessageType.PROPOSE_RUN_COMPLETION_ACK: [pb.ProposeRunCompletionAckMessage(completion_id=9)],
    MessageType.INPUT_COMMAND: [
        pb.InputCommandMessage(
            headers=[
                pb.Header(key="content-type", value="application/json"),
                pb.Header(key="x-restate-ingress-path", value="/Greeter/greet"),
            ],
            value=value('"Alice"'),
            name="input",
        )
    ],
    MessageType.OUTPUT_COMMAND: [
        pb.OutputCommandMessage(value=value('"Hello Alice!"'), name="out"),
        pb.OutputCommandMessage(failure=failure(), name="out-failed"),
    ],
    MessageType.GET_LAZY_STATE_COMMAND: [
        pb.GetLazyStateCommandMessage(key=b"count", result_completion_id=1, name="get")
    ],
    MessageType.SET_STATE_COMMAND: [
        pb.SetStateCommandMessage(key=b"count", value=value("5"), name="set")
    ],
    MessageType.CLEAR_STATE_COMMAND: [pb.ClearStateCommandMessage(key=b"a", name="clear")],
    MessageType.CLEAR_ALL_STATE_COMMAND: [pb.ClearAllStateCommandMessage(name="clear-all")],
    MessageType.GET_LAZY_STATE_KEYS_COMMAND: [
        pb.GetLazyStateKeysCommandMessage(result_completion_id=2, name="keys")
    ],
    MessageType.GET_EAGER_STATE_COMMAND: [
        pb.GetEagerStateCommandMessage(key=b"a", value=value("1"), name="get-a"),
        pb.GetEagerStateCommandMessage(key=b"missing", void=pb.Void(), name="get-missing"),
    ],
    MessageType.GET_EAGER_STATE_KEYS_COMMAND: [
        pb.GetEagerStateKeysCommandMessage(value=pb.StateKeys(keys=[b"a", b"b"]), name="keys")
    ],
    MessageType.GET_PROMISE_COMMAND: [
        pb.GetPromiseCommandMessage(key="email_link", result_completion_id=2, name="promise")
    ],
    MessageType.PEEK_PROMISE_COMMAND: [
        pb.PeekPromiseCommandMessage(key="email_link", result_completion_id=1, name="peek")
    ],
    MessageType.COMPLETE_PROMISE_COMMAND: [
        pb.CompletePromiseCommandMessage(
            key="email_link", completion_value=value("link"), result_completion_id=1, name="c"
        ),
        pb.CompletePromiseCommandMessage(
            key="email_link", completion_failure=failure(), result_completion_id=2, name="r"
        ),
    ],
    MessageType.SLEEP_COMMAND: [
        pb.SleepCommandMessage(wake_up_time=1795256969065, result_completion_id=5, name="nap")
    ],
    MessageType.CALL_COMMAND: [
        pb.CallCommandMessage(
            service_name="Greeter",
            handler_name="greet",
            parameter=b'"Bob"',
            headers=[pb.Header(key="x-trace", value="1")],
            key="obj-1",
            idempotency_key="req-1",
            scope="tenant-a",
            limit_key="limit-1",
            invocation_id_notification_idx=1,
            result_completion_id=2,
            name="call",
        )
    ],
    MessageType.ONE_WAY_CALL_COMMAND: [
        pb.OneWayCallCommandMessage(
            service_name="Counter",
            handler_name="add",
            parameter=b"1",
            invoke_time=1795256947441,
            headers=[pb.Header(key="x-trace", value="2")],
            key="delayed",
            idempotency_key="req-2",
            scope="tenant-a",
            limit_key="limit-2",
            invocation_id_notification_idx=4,
            name="send",
        )
    ],
    MessageType.SEND_SIGNAL_COMMAND: [
        pb.SendSignalCommandMessage(
            target_invocation_id=INVOCATION_ID, idx=1, void=pb.Void(), entry_name="cancel"
        ),
        pb.SendSignalCommandMessage(
            target_invocation_id=INVOCATION_ID, name="approved", value=value("yes"), entry_name="s"
        ),
        pb.SendSignalCommandMessage(
            target_invocation_id=INVOCATION_ID, idx=17, failure=failure(), entry_name="f"
        ),
    ],
    MessageType.RUN_COMMAND: [pb.RunCommandMessage(result_completion_id=1, name="step-0")],
    MessageType.ATTACH_INVOCATION_COMMAND: [
        pb.AttachInvocationCommandMessage(
            invocation_id=INVOCATION_ID, result_completion_id=1, name="attach"
        ),
        pb.AttachInvocationCommandMessage(
            idempotent_request_target=IDEMPOTENT_TARGET, result_completion_id=2, name="a2"
        ),
        pb.AttachInvocationCommandMessage(
            workflow_target=WORKFLOW_TARGET, result_completion_id=3, name="a3"
        ),
    ],
    MessageType.GET_INVOCATION_OUTPUT_COMMAND: [
        pb.GetInvocationOutputCommandMessage(
            invocation_id=INVOCATION_ID, result_completion_id=1, name="output"
        ),
        pb.GetInvocationOutputCommandMessage(
            idempotent_request_target=IDEMPOTENT_TARGET, result_completion_id=2, name="o2"
        ),
        pb.GetInvocationOutputCommandMessage(
            workflow_target=WORKFLOW_TARGET, result_completion_id=3, name="o3"
        ),
    ],
    MessageType.COMPLETE_AWAKEABLE_COMMAND: [
        pb.CompleteAwakeableCommandMessage(
            awakeable_id="sign_1STxC7Rw88bwBjlJXuZgAfbf08_R-gJWEAAAAEQ", value=value(), name="ok"
        ),
        pb.CompleteAwakeableCommandMessage(
            awakeable_id="sign_1STxC7Rw88bwBjlJXuZgAfbf08_R-gJWEAAAAEQ",
            failure=failure(),
            name="reject",
        ),
    ],
    MessageType.GET_LAZY_STATE_COMPLETION: [
        pb.GetLazyStateCompletionNotificationMessage(completion_id=1, void=pb.Void()),
        pb.GetLazyStateCompletionNotificationMessage(completion_id=2, value=value("5")),
    ],
    MessageType.GET_LAZY_STATE_KEYS_COMPLETION: [
        pb.GetLazyStateKeysCompletionNotificationMessage(
            completion_id=1, state_keys=pb.StateKeys(keys=[b"count", b"other"])
        )
    ],
    MessageType.GET_PROMISE_COMPLETION: [
        pb.GetPromiseCompletionNotificationMessage(completion_id=2, value=value("link")),
        pb.GetPromiseCompletionNotificationMessage(completion_id=3, failure=failure()),
    ],
    MessageType.PEEK_PROMISE_COMPLETION: [
        pb.PeekPromiseCompletionNotificationMessage(completion_id=1, void=pb.Void()),
        pb.PeekPromiseCompletionNotificationMessage(completion_id=2, value=value("link")),
        pb.PeekPromiseCompletionNotificationMessage(completion_id=3, failure=failure()),
    ],
    MessageType.COMPLETE_PROMISE_COMPLETION: [
        pb.CompletePromiseCompletionNotificationMessage(completion_id=1, void=pb.Void()),
        pb.CompletePromiseCompletionNotificationMessage(completion_id=2, failure=failure()),
    ],
    MessageType.SLEEP_COMPLETION: [
        pb.SleepCompletionNotificationMessage(completion_id=5, void=pb.Void())
    ],
    MessageType.CALL_COMPLETION: [
        pb.CallCompletionNotificationMessage(completion_id=2, value=value('"Hello Bob!"')),
        pb.CallCompletionNotificationMessage(completion_id=3, failure=failure()),
    ],
    MessageType.CALL_INVOCATION_ID_COMPLETION: [
        pb.CallInvocationIdCompletionNotificationMessage(
            completion_id=1, invocation_id=INVOCATION_ID
        )
    ],
    MessageType.RUN_COMPLETION: [
        pb.RunCompletionNotificationMessage(completion_id=1, value=value("1")),
        pb.RunCompletionNotificationMessage(completion_id=2, failure=failure()),
    ],
    MessageType.ATTACH_INVOCATION_COMPLETION: [
        pb.AttachInvocationCompletionNotificationMessage(completion_id=1, value=value()),
        pb.AttachInvocationCompletionNotificationMessage(completion_id=2, failure=failure()),
    ],
    MessageType.GET_INVOCATION_OUTPUT_COMPLETION: [
        pb.GetInvocationOutputCompletionNotificationMessage(completion_id=1, void=pb.Void()),
        pb.GetInvocationOutputCompletionNotificationMessage(completion_id=2, value=value()),
        pb.GetInvocationOutputCompletionNotificationMessage(completion_id=3, failure=failure()),
    ],
    MessageType.SIGNAL_NOTIFICATION: [
        pb.SignalNotificationMessage(idx=17, value=value("hello from ingress")),
        pb.SignalNotificationMessage(name="approved", void=pb.Void()),
        pb.SignalNotificationMessage(idx=1, failure=failure()),
    ],
}


def _roundtrip(message: Message, version: int, *, requested_ack: bool = False) -> Message:
    frames = FrameDecoder().feed(encode_message(message, requested_ack=requested_ack))
    assert len(frames) == 1
    (frame,) = frames
    assert frame.type == message_type_of(message)
    assert frame.requested_ack is requested_ack
    return decode_message(frame.type, frame.payload, version)


def test_samples_cover_every_message_type():
    assert set(SAMPLES) == set(MessageType)


@pytest.mark.parametrize("message_type", list(MessageType), ids=lambda t: t.name)
def test_samples_set_every_field_of_their_message(message_type: MessageType):
    """Guards the round-trip below: a field added to the .proto must get a sample value."""
    descriptor = message_class(message_type).DESCRIPTOR
    covered = {fd.name for sample in SAMPLES[message_type] for fd, _ in sample.ListFields()}
    assert covered == {fd.name for fd in descriptor.fields}


@pytest.mark.parametrize(
    ("message_type", "index"),
    [(t, i) for t, samples in SAMPLES.items() for i in range(len(samples))],
    ids=lambda x: x.name if isinstance(x, MessageType) else str(x),
)
def test_every_message_type_roundtrips_through_a_frame(message_type: MessageType, index: int):
    message = SAMPLES[message_type][index]
    decoded = _roundtrip(message, ProtocolVersion.V7)
    assert type(decoded) is type(message)
    assert decoded == message
    assert decoded.SerializeToString() == message.SerializeToString()


def test_v6_suspension_roundtrips_with_flat_lists():
    message = pb.SuspensionMessageV6(
        waiting_completions=[1, 4], waiting_signals=[1, 17], waiting_named_signals=["approved"]
    )
    decoded = _roundtrip(message, ProtocolVersion.V6)
    assert isinstance(decoded, pb.SuspensionMessageV6)
    assert decoded == message


def test_v7_suspension_roundtrips_with_a_future_tree():
    message = pb.SuspensionMessage(awaiting_on=future_tree())
    decoded = _roundtrip(message, ProtocolVersion.V7)
    assert isinstance(decoded, pb.SuspensionMessage)
    assert decoded.awaiting_on.nested_futures[1].nested_futures[0].waiting_named_signals == [
        "a",
        "b",
    ]
    assert decoded == message


def test_suspension_shape_is_chosen_by_protocol_version():
    assert message_class(MessageType.SUSPENSION, ProtocolVersion.V5) is pb.SuspensionMessageV6
    assert message_class(MessageType.SUSPENSION, ProtocolVersion.V6) is pb.SuspensionMessageV6
    assert message_class(MessageType.SUSPENSION, ProtocolVersion.V7) is pb.SuspensionMessage


def test_v6_suspension_fields_are_not_read_as_a_v7_future():
    """Tags 1-3 are reserved in V7: a V6 body read as V7 keeps no awaited future."""
    payload = pb.SuspensionMessageV6(waiting_completions=[1]).SerializeToString()
    as_v7 = decode_message(MessageType.SUSPENSION, payload, ProtocolVersion.V7)
    assert not as_v7.HasField("awaiting_on")


def test_propose_run_completion_keeps_the_requested_ack_flag():
    message = SAMPLES[MessageType.PROPOSE_RUN_COMPLETION][0]
    assert _roundtrip(message, ProtocolVersion.V7, requested_ack=True) == message
