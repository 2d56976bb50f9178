from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InvokedBy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INGRESS: _ClassVar[InvokedBy]
    SERVICE: _ClassVar[InvokedBy]
    RESTART_AS_NEW: _ClassVar[InvokedBy]

class InvocationOp(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CANCEL: _ClassVar[InvocationOp]
    KILL: _ClassVar[InvocationOp]
    PURGE: _ClassVar[InvocationOp]
    PURGE_JOURNAL: _ClassVar[InvocationOp]
    PAUSE: _ClassVar[InvocationOp]
    RESUME: _ClassVar[InvocationOp]
    RESTART: _ClassVar[InvocationOp]
INGRESS: InvokedBy
SERVICE: InvokedBy
RESTART_AS_NEW: InvokedBy
CANCEL: InvocationOp
KILL: InvocationOp
PURGE: InvocationOp
PURGE_JOURNAL: InvocationOp
PAUSE: InvocationOp
RESUME: InvocationOp
RESTART: InvocationOp

class Header(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class Caller(_message.Message):
    __slots__ = ("invocation_id", "result_completion_id", "service_name")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_COMPLETION_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    invocation_id: bytes
    result_completion_id: int
    service_name: str
    def __init__(self, invocation_id: _Optional[bytes] = ..., result_completion_id: _Optional[int] = ..., service_name: _Optional[str] = ...) -> None: ...

class Invoke(_message.Message):
    __slots__ = ("invocation_id", "service", "handler", "key", "input", "headers", "idempotency_key", "execute_at_ms", "caller", "invoked_by", "invoked_by_id", "invoked_by_service", "service_type", "handler_type", "is_send", "completion_retention_ms", "journal_retention_ms", "trace_id", "retry_policy")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    EXECUTE_AT_MS_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    INVOKED_BY_FIELD_NUMBER: _ClassVar[int]
    INVOKED_BY_ID_FIELD_NUMBER: _ClassVar[int]
    INVOKED_BY_SERVICE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    HANDLER_TYPE_FIELD_NUMBER: _ClassVar[int]
    IS_SEND_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_RETENTION_MS_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_RETENTION_MS_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    invocation_id: bytes
    service: str
    handler: str
    key: str
    input: bytes
    headers: _containers.RepeatedCompositeFieldContainer[Header]
    idempotency_key: str
    execute_at_ms: int
    caller: Caller
    invoked_by: InvokedBy
    invoked_by_id: bytes
    invoked_by_service: str
    service_type: str
    handler_type: str
    is_send: bool
    completion_retention_ms: int
    journal_retention_ms: int
    trace_id: str
    retry_policy: RetryPolicy
    def __init__(self, invocation_id: _Optional[bytes] = ..., service: _Optional[str] = ..., handler: _Optional[str] = ..., key: _Optional[str] = ..., input: _Optional[bytes] = ..., headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., idempotency_key: _Optional[str] = ..., execute_at_ms: _Optional[int] = ..., caller: _Optional[_Union[Caller, _Mapping]] = ..., invoked_by: _Optional[_Union[InvokedBy, str]] = ..., invoked_by_id: _Optional[bytes] = ..., invoked_by_service: _Optional[str] = ..., service_type: _Optional[str] = ..., handler_type: _Optional[str] = ..., is_send: _Optional[bool] = ..., completion_retention_ms: _Optional[int] = ..., journal_retention_ms: _Optional[int] = ..., trace_id: _Optional[str] = ..., retry_policy: _Optional[_Union[RetryPolicy, _Mapping]] = ...) -> None: ...

class RetryPolicy(_message.Message):
    __slots__ = ("initial_interval_ms", "exponentiation_factor", "max_interval_ms", "max_attempts", "kill_on_max_attempts")
    INITIAL_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    EXPONENTIATION_FACTOR_FIELD_NUMBER: _ClassVar[int]
    MAX_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    KILL_ON_MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    initial_interval_ms: int
    exponentiation_factor: float
    max_interval_ms: int
    max_attempts: int
    kill_on_max_attempts: bool
    def __init__(self, initial_interval_ms: _Optional[int] = ..., exponentiation_factor: _Optional[float] = ..., max_interval_ms: _Optional[int] = ..., max_attempts: _Optional[int] = ..., kill_on_max_attempts: _Optional[bool] = ...) -> None: ...

class InvokerEffect(_message.Message):
    __slots__ = ("invocation_id", "attempt", "pin_deployment_id", "pin_protocol_version", "attempt_server", "then_end", "more_commands", "then_run", "command", "run_proposal", "suspended", "failed", "end", "started")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    PIN_DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PIN_PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_SERVER_FIELD_NUMBER: _ClassVar[int]
    THEN_END_FIELD_NUMBER: _ClassVar[int]
    MORE_COMMANDS_FIELD_NUMBER: _ClassVar[int]
    THEN_RUN_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    RUN_PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    SUSPENDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    invocation_id: bytes
    attempt: int
    pin_deployment_id: str
    pin_protocol_version: int
    attempt_server: str
    then_end: bool
    more_commands: _containers.RepeatedCompositeFieldContainer[JournalCommand]
    then_run: RunProposal
    command: JournalCommand
    run_proposal: RunProposal
    suspended: Suspended
    failed: AttemptFailed
    end: End
    started: AttemptStarted
    def __init__(self, invocation_id: _Optional[bytes] = ..., attempt: _Optional[int] = ..., pin_deployment_id: _Optional[str] = ..., pin_protocol_version: _Optional[int] = ..., attempt_server: _Optional[str] = ..., then_end: _Optional[bool] = ..., more_commands: _Optional[_Iterable[_Union[JournalCommand, _Mapping]]] = ..., then_run: _Optional[_Union[RunProposal, _Mapping]] = ..., command: _Optional[_Union[JournalCommand, _Mapping]] = ..., run_proposal: _Optional[_Union[RunProposal, _Mapping]] = ..., suspended: _Optional[_Union[Suspended, _Mapping]] = ..., failed: _Optional[_Union[AttemptFailed, _Mapping]] = ..., end: _Optional[_Union[End, _Mapping]] = ..., started: _Optional[_Union[AttemptStarted, _Mapping]] = ...) -> None: ...

class JournalCommand(_message.Message):
    __slots__ = ("message_type", "payload", "requested_ack", "target_service_type", "target_handler_type", "target_completion_retention_ms", "target_journal_retention_ms", "target_retry_policy")
    MESSAGE_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_ACK_FIELD_NUMBER: _ClassVar[int]
    TARGET_SERVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    TARGET_HANDLER_TYPE_FIELD_NUMBER: _ClassVar[int]
    TARGET_COMPLETION_RETENTION_MS_FIELD_NUMBER: _ClassVar[int]
    TARGET_JOURNAL_RETENTION_MS_FIELD_NUMBER: _ClassVar[int]
    TARGET_RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    message_type: int
    payload: bytes
    requested_ack: bool
    target_service_type: str
    target_handler_type: str
    target_completion_retention_ms: int
    target_journal_retention_ms: int
    target_retry_policy: RetryPolicy
    def __init__(self, message_type: _Optional[int] = ..., payload: _Optional[bytes] = ..., requested_ack: _Optional[bool] = ..., target_service_type: _Optional[str] = ..., target_handler_type: _Optional[str] = ..., target_completion_retention_ms: _Optional[int] = ..., target_journal_retention_ms: _Optional[int] = ..., target_retry_policy: _Optional[_Union[RetryPolicy, _Mapping]] = ...) -> None: ...

class RunProposal(_message.Message):
    __slots__ = ("completion_id", "payload", "requested_ack")
    COMPLETION_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_ACK_FIELD_NUMBER: _ClassVar[int]
    completion_id: int
    payload: bytes
    requested_ack: bool
    def __init__(self, completion_id: _Optional[int] = ..., payload: _Optional[bytes] = ..., requested_ack: _Optional[bool] = ...) -> None: ...

class Suspended(_message.Message):
    __slots__ = ("payload", "protocol_version")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    protocol_version: int
    def __init__(self, payload: _Optional[bytes] = ..., protocol_version: _Optional[int] = ...) -> None: ...

class AttemptFailed(_message.Message):
    __slots__ = ("code", "message", "stacktrace", "related_command_index", "related_command_name", "related_command_type", "next_retry_delay_ms", "behavior", "transport", "deployment_server", "error_code")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STACKTRACE_FIELD_NUMBER: _ClassVar[int]
    RELATED_COMMAND_INDEX_FIELD_NUMBER: _ClassVar[int]
    RELATED_COMMAND_NAME_FIELD_NUMBER: _ClassVar[int]
    RELATED_COMMAND_TYPE_FIELD_NUMBER: _ClassVar[int]
    NEXT_RETRY_DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    BEHAVIOR_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_SERVER_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    stacktrace: str
    related_command_index: int
    related_command_name: str
    related_command_type: int
    next_retry_delay_ms: int
    behavior: int
    transport: bool
    deployment_server: str
    error_code: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., stacktrace: _Optional[str] = ..., related_command_index: _Optional[int] = ..., related_command_name: _Optional[str] = ..., related_command_type: _Optional[int] = ..., next_retry_delay_ms: _Optional[int] = ..., behavior: _Optional[int] = ..., transport: _Optional[bool] = ..., deployment_server: _Optional[str] = ..., error_code: _Optional[str] = ...) -> None: ...

class End(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AttemptStarted(_message.Message):
    __slots__ = ("deployment_server",)
    DEPLOYMENT_SERVER_FIELD_NUMBER: _ClassVar[int]
    deployment_server: str
    def __init__(self, deployment_server: _Optional[str] = ...) -> None: ...

class TimerFired(_message.Message):
    __slots__ = ("invocation_id", "kind", "completion_id", "attempt")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    invocation_id: bytes
    kind: int
    completion_id: int
    attempt: int
    def __init__(self, invocation_id: _Optional[bytes] = ..., kind: _Optional[int] = ..., completion_id: _Optional[int] = ..., attempt: _Optional[int] = ...) -> None: ...

class DeliverSignal(_message.Message):
    __slots__ = ("invocation_id", "signal_idx", "signal_name", "void", "value", "failure")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_IDX_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_NAME_FIELD_NUMBER: _ClassVar[int]
    VOID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    invocation_id: bytes
    signal_idx: int
    signal_name: str
    void: bool
    value: bytes
    failure: Failure
    def __init__(self, invocation_id: _Optional[bytes] = ..., signal_idx: _Optional[int] = ..., signal_name: _Optional[str] = ..., void: _Optional[bool] = ..., value: _Optional[bytes] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ...) -> None: ...

class Failure(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class DeliverCallResult(_message.Message):
    __slots__ = ("invocation_id", "completion_id", "value", "failure")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    invocation_id: bytes
    completion_id: int
    value: bytes
    failure: Failure
    def __init__(self, invocation_id: _Optional[bytes] = ..., completion_id: _Optional[int] = ..., value: _Optional[bytes] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ...) -> None: ...

class ManageInvocation(_message.Message):
    __slots__ = ("invocation_id", "op", "resume_deployment_id", "new_invocation_id", "restart_from", "restart_deployment_id")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    RESUME_DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    RESTART_FROM_FIELD_NUMBER: _ClassVar[int]
    RESTART_DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    invocation_id: bytes
    op: InvocationOp
    resume_deployment_id: str
    new_invocation_id: bytes
    restart_from: int
    restart_deployment_id: str
    def __init__(self, invocation_id: _Optional[bytes] = ..., op: _Optional[_Union[InvocationOp, str]] = ..., resume_deployment_id: _Optional[str] = ..., new_invocation_id: _Optional[bytes] = ..., restart_from: _Optional[int] = ..., restart_deployment_id: _Optional[str] = ...) -> None: ...

class Record(_message.Message):
    __slots__ = ("timestamp_ms", "invoke", "effect", "timer", "signal", "call_result", "manage", "set_state")
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    INVOKE_FIELD_NUMBER: _ClassVar[int]
    EFFECT_FIELD_NUMBER: _ClassVar[int]
    TIMER_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    CALL_RESULT_FIELD_NUMBER: _ClassVar[int]
    MANAGE_FIELD_NUMBER: _ClassVar[int]
    SET_STATE_FIELD_NUMBER: _ClassVar[int]
    timestamp_ms: int
    invoke: Invoke
    effect: InvokerEffect
    timer: TimerFired
    signal: DeliverSignal
    call_result: DeliverCallResult
    manage: ManageInvocation
    set_state: SetObjectState
    def __init__(self, timestamp_ms: _Optional[int] = ..., invoke: _Optional[_Union[Invoke, _Mapping]] = ..., effect: _Optional[_Union[InvokerEffect, _Mapping]] = ..., timer: _Optional[_Union[TimerFired, _Mapping]] = ..., signal: _Optional[_Union[DeliverSignal, _Mapping]] = ..., call_result: _Optional[_Union[DeliverCallResult, _Mapping]] = ..., manage: _Optional[_Union[ManageInvocation, _Mapping]] = ..., set_state: _Optional[_Union[SetObjectState, _Mapping]] = ...) -> None: ...

class SetObjectState(_message.Message):
    __slots__ = ("service", "key", "entries", "version")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    service: str
    key: str
    entries: _containers.RepeatedCompositeFieldContainer[StateEntry]
    version: str
    def __init__(self, service: _Optional[str] = ..., key: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[StateEntry, _Mapping]]] = ..., version: _Optional[str] = ...) -> None: ...

class StateEntry(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    value: bytes
    def __init__(self, key: _Optional[bytes] = ..., value: _Optional[bytes] = ...) -> None: ...
