"""perdure.Client / perdure.AsyncClient against a perdure server and the real Restate server.

Services: ``Greeter`` (official_greeter), ``Counter``/``Waiter`` (introspected) and, for the
terminal failure, the ``Signup`` workflow (official_lifecycle, whose ``Counter`` clashes with
introspected's, so it gets its own server).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import perdure
from perdure.sdk.client import IngressError, OutputNotReady, SendHandle
from tests.support import PerdureServer, RestateServer, ServiceProcess, wait_until

GREETER = "tests.interop.services.official_greeter:app"
INTROSPECTED = "tests.server.services.introspected:app"
LIFECYCLE = "tests.server.services.official_lifecycle:app"

# Typed definitions mirroring the served services (the caller's copy of the interface).
greeter_def = perdure.Service("Greeter")
counter_def = perdure.VirtualObject("Counter")


@greeter_def.handler()
async def greet(ctx: perdure.Context, name: str) -> str:  # pragma: no cover - never run here
    raise NotImplementedError


@counter_def.handler()
async def add(ctx: perdure.ObjectContext, n: int) -> int:  # pragma: no cover - never run here
    raise NotImplementedError


@pytest.fixture(scope="module", params=["perdure", "restate"])
def deployed(request, tmp_path_factory: pytest.TempPathFactory):
    """A perdure or Restate server running Greeter, Counter, Steps and Waiter, shared by the
    module's tests (keys and idempotency keys differ per test); returns (server, awakeables)."""
    base = tmp_path_factory.mktemp(f"client-{request.param}")
    awakeables = base / "awakeables.txt"
    server_cls = PerdureServer if request.param == "perdure" else RestateServer
    server = server_cls(base / request.param, log_dir=base / "logs").start()
    services = []
    try:
        for module in (GREETER, INTROSPECTED):
            svc = ServiceProcess(
                module, env={"PERDURE_TEST_AWAKEABLES": str(awakeables)}, log_dir=base / "logs"
            ).start()
            services.append(svc)
            server.register(svc.url)
        yield server, awakeables
    finally:
        for svc in services:
            svc.stop()
        server.cleanup()


def _lines(path: Path) -> set[str]:
    return set(path.read_text().split()) if path.exists() else set()


def _new_awakeable_id(path: Path, seen: set[str]) -> str:
    """The awakeable id a Waiter wrote after ``seen`` was taken (each attempt writes its id)."""

    def new_line():
        fresh = _lines(path) - seen
        return fresh.pop() if fresh else None

    return wait_until(new_line, 20, what="the Waiter to write its awakeable id")


def test_call_service_and_keyed_object(deployed):
    server, _ = deployed
    client = perdure.Client(server.ingress_url)
    assert client.call("Greeter", "greet", "Ana") == "Hello Ana!"
    assert client.call("Counter", "add", 2, key="c/1") == 2  # the key is URL-encoded
    assert client.call("Counter", "add", 3, key="c/1") == 5
    assert client.call("Counter", "get", key="c/1") == 5
    assert client.call("Counter", "get", key="other") == 0


def test_typed_calls_from_handler_definitions(deployed):
    server, _ = deployed
    with perdure.Client(server.ingress_url) as client:
        assert client.service_call(greet, "Typed") == "Hello Typed!"
        assert client.object_call(add, "t", 4) == 4
        handle = client.object_send(add, "t", 1, idempotency_key="typed-1")
        assert client.attach(handle.invocation_id) == 5


def test_send_then_attach_and_output(deployed):
    server, _ = deployed
    client = perdure.Client(server.ingress_url)
    handle = client.send("Greeter", "greet", "Bo", idempotency_key="bo-1")
    assert isinstance(handle, SendHandle)
    assert handle.invocation_id.startswith("inv_")
    assert handle.status == "Accepted" and not handle.previously_accepted
    assert client.attach(handle.invocation_id) == "Hello Bo!"
    assert client.output(handle.invocation_id) == "Hello Bo!"
    assert client.output(idempotent=("Greeter", None, "greet", "bo-1")) == "Hello Bo!"
    assert client.attach(idempotent=("Greeter", None, "greet", "bo-1")) == "Hello Bo!"


def test_delayed_send(deployed):
    server, _ = deployed
    client = perdure.Client(server.ingress_url)
    handle = client.send("Greeter", "greet", "Later", delay=0.2, idempotency_key="later")
    assert handle.execution_time is not None
    assert client.attach(handle.invocation_id) == "Hello Later!"


def test_idempotent_send_twice_is_previously_accepted(deployed):
    server, _ = deployed
    client = perdure.Client(server.ingress_url)
    first = client.send("Counter", "add", 1, key="idem", idempotency_key="once")
    second = client.send("Counter", "add", 1, key="idem", idempotency_key="once")
    assert first.status == "Accepted"
    assert second.status == "PreviouslyAccepted" and second.previously_accepted
    assert second.invocation_id == first.invocation_id
    assert client.attach(first.invocation_id) == 1
    assert client.call("Counter", "get", key="idem") == 1


def test_unknown_service_is_an_ingress_404(deployed):
    server, _ = deployed
    client = perdure.Client(server.ingress_url)
    with pytest.raises(IngressError) as err:
        client.call("NoSuchService", "h", 1)
    assert err.value.status_code == 404
    assert not isinstance(err.value, perdure.TerminalError)
    with pytest.raises(IngressError) as err:
        client.send("Greeter", "nope", "x")
    assert err.value.status_code == 404


def test_resolve_awakeable_completes_the_waiter_and_output_not_ready(deployed):
    server, awakeables = deployed
    client = perdure.Client(server.ingress_url)
    seen = _lines(awakeables)
    handle = client.send("Waiter", "wait", idempotency_key="w1")
    awakeable_id = _new_awakeable_id(awakeables, seen)
    with pytest.raises(OutputNotReady) as err:
        client.output(handle.invocation_id)
    assert err.value.status_code == 470
    client.resolve_awakeable(awakeable_id, "wake up")
    assert client.attach(handle.invocation_id) == "wake up"


def test_reject_awakeable_fails_the_waiter(deployed):
    server, awakeables = deployed
    client = perdure.Client(server.ingress_url)
    seen = _lines(awakeables)
    handle = client.send("Waiter", "wait", idempotency_key="w2")
    client.reject_awakeable(_new_awakeable_id(awakeables, seen), "go away")
    with pytest.raises(perdure.TerminalError) as err:
        client.attach(handle.invocation_id)
    assert err.value.message == "go away"
    assert err.value.status_code == 500


def test_terminal_failure_raises_terminal_error_with_status(any_server, start_service):
    svc = start_service(LIFECYCLE)
    any_server.register(svc.url)
    client = perdure.Client(any_server.ingress_url)
    handle = client.send("Signup", "run", "a@b.c", key="w1")
    assert client.call("Signup", "reject", "link expired", key="w1") == "ok"
    with pytest.raises(perdure.TerminalError) as err:
        client.attach(workflow=("Signup", "w1"))
    assert err.value.status_code == 400
    assert err.value.message == "link expired"
    with pytest.raises(perdure.TerminalError) as err:
        client.attach(handle.invocation_id)
    assert err.value.status_code == 400
    with pytest.raises(perdure.TerminalError):
        client.output(workflow=("Signup", "w1"))
    # a second run of the same workflow id is a duplicate
    assert client.send("Signup", "run", "a@b.c", key="w1").status == "PreviouslyAccepted"


# ------------------------------------------------------------------ async


async def test_async_call_send_attach_and_errors(deployed):
    server, _ = deployed
    async with perdure.AsyncClient(server.ingress_url) as client:
        assert await client.call("Greeter", "greet", "Async") == "Hello Async!"
        assert await client.call("Counter", "add", 7, key="a") == 7
        assert await client.service_call(greet, "T") == "Hello T!"
        first = await client.send("Greeter", "greet", "S", idempotency_key="s1")
        second = await client.send("Greeter", "greet", "S", idempotency_key="s1")
        assert (first.status, second.status) == ("Accepted", "PreviouslyAccepted")
        assert await client.attach(first.invocation_id) == "Hello S!"
        with pytest.raises(IngressError) as err:
            await client.call("NoSuchService", "h")
        assert err.value.status_code == 404


async def test_async_resolve_awakeable(deployed):
    server, awakeables = deployed
    async with perdure.AsyncClient(server.ingress_url) as client:
        seen = _lines(awakeables)
        handle = await client.send("Waiter", "wait", idempotency_key="aw")
        awakeable_id = _new_awakeable_id(awakeables, seen)
        with pytest.raises(OutputNotReady):
            await client.output(handle.invocation_id)
        await client.resolve_awakeable(awakeable_id, "async wake")
        assert await client.attach(handle.invocation_id) == "async wake"
