"""The invoker's checks of a command before it is stored (protocol.md section 3.9): a handler
that issues a command its handler type may not issue fails the attempt with a clear message."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from perdure.protocol.ids import InvocationId
from perdure.protocol.messages import MessageType as T
from perdure.protocol.messages import message_type_of, pb
from perdure.server.invoker.invoker import CommandRejected, check_command

SERVICE = SimpleNamespace(service_ty="service", handler_ty="")
EXCLUSIVE = SimpleNamespace(service_ty="virtual_object", handler_ty="exclusive")
SHARED = SimpleNamespace(service_ty="virtual_object", handler_ty="shared")
WORKFLOW_RUN = SimpleNamespace(service_ty="workflow", handler_ty="workflow")
WORKFLOW_SHARED = SimpleNamespace(service_ty="workflow", handler_ty="shared")

SET = pb.SetStateCommandMessage(key=b"k", value=pb.Value(content=b"1"))
GET = pb.GetEagerStateCommandMessage(key=b"k", void=pb.Void())
PEEK = pb.PeekPromiseCommandMessage(key="p", result_completion_id=1)


def check(row, msg, index: int = 3) -> None:
    check_command(row, message_type_of(msg), msg, index)


@pytest.mark.parametrize("row", [EXCLUSIVE, WORKFLOW_RUN], ids=["exclusive", "workflow-run"])
def test_exclusive_and_workflow_run_handlers_may_write_state(row):
    for msg in (SET, pb.ClearStateCommandMessage(key=b"k"), pb.ClearAllStateCommandMessage()):
        check(row, msg)


@pytest.mark.parametrize("row", [SHARED, WORKFLOW_SHARED, SERVICE], ids=["shared", "workflow-shared", "service"])
def test_other_handlers_may_not_write_state(row):
    with pytest.raises(CommandRejected) as err:
        check(row, SET, index=1)
    assert str(err.value) == ("cannot process command Command: SetState (command index 1) because of a "
                              "failed precondition: unsupported entry type, this handler type cannot write state")
    assert err.value.command_type == T.SET_STATE_COMMAND and err.value.command_index == 1


def test_state_reads_need_a_keyed_service():
    for row in (EXCLUSIVE, SHARED, WORKFLOW_SHARED):
        check(row, GET)
    with pytest.raises(CommandRejected, match="has no state"):
        check(SERVICE, GET)


def test_promises_exist_only_in_workflows():
    check(WORKFLOW_RUN, PEEK)
    check(WORKFLOW_SHARED, PEEK)
    with pytest.raises(CommandRejected, match="only workflows have durable promises"):
        check(EXCLUSIVE, PEEK)


@pytest.mark.parametrize("msg", [
    pb.SendSignalCommandMessage(target_invocation_id="inv_1nope", idx=1, void=pb.Void()),
    pb.CompleteAwakeableCommandMessage(awakeable_id="sign_1nope", value=pb.Value(content=b"1")),
    pb.AttachInvocationCommandMessage(invocation_id="inv_1nope", result_completion_id=1),
    pb.GetInvocationOutputCommandMessage(result_completion_id=1),
], ids=["send-signal", "complete-awakeable", "attach", "output-without-target"])
def test_commands_naming_another_invocation_need_a_valid_id(msg):
    with pytest.raises(CommandRejected, match="bad"):
        check(SERVICE, msg)


def test_valid_targets_pass():
    iid = str(InvocationId.generate())
    check(SERVICE, pb.SendSignalCommandMessage(target_invocation_id=iid, idx=1, void=pb.Void()))
    check(SERVICE, pb.AttachInvocationCommandMessage(
        workflow_target=pb.WorkflowTarget(workflow_name="W", workflow_key="k"), result_completion_id=1))
