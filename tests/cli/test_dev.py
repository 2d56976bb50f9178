"""`perdure dev SERVICE_FILE.py`: a server plus the service, registered, and restarted and
re-registered when the file changes."""

from __future__ import annotations

import json
import signal

from tests.cli.cli_helpers import PERDURE_BIN
from tests.support import (
    ManagedProcess,
    free_port,
    http_get,
    http_request,
    port_accepts,
    wait_until,
)

GREETER_V1 = '''
import perdure

greeter = perdure.Service("Greeter")


@greeter.handler()
async def greet(ctx: perdure.Context, name: str) -> str:
    return await ctx.run_typed("greeting", lambda: f"Hello {name}!")

app = perdure.app([greeter])
'''

GREETER_V2 = GREETER_V1.replace("Hello", "Bonjour") + '''

@greeter.handler()
async def shout(ctx: perdure.Context, name: str) -> str:
    return name.upper()

app = perdure.app([greeter])
'''


def _handlers(admin_url: str) -> list[str]:
    answer = http_get(admin_url + "/services")
    if answer.status != 200:
        return []
    return sorted(h["name"] for s in answer.json()["services"] for h in s["handlers"])


def _greet(ingress_url: str, handler: str = "greet") -> object:
    answer = http_request("POST", f"{ingress_url}/Greeter/{handler}", json.dumps("ada").encode(),
                          headers={"content-type": "application/json"}, timeout=30)
    return answer.json() if answer.status == 200 else None


def test_dev_serves_registers_and_reloads_the_service_on_change(tmp_path):
    source = tmp_path / "greeter_dev.py"
    source.write_text(GREETER_V1)
    ingress, admin, service = free_port(), free_port(), free_port()
    admin_url, ingress_url = f"http://127.0.0.1:{admin}", f"http://127.0.0.1:{ingress}"
    data = tmp_path / "data"
    proc = ManagedProcess([str(PERDURE_BIN), "dev", str(source), "--data-dir", str(data),
                           "--ingress-bind", f"127.0.0.1:{ingress}", "--admin-bind", f"127.0.0.1:{admin}",
                           "--service-bind", f"127.0.0.1:{service}"],
                          log_dir=tmp_path / "logs", name="perdure-dev")
    try:
        wait_until(lambda: _handlers(admin_url) == ["greet"], 60, interval=0.2, what="the service to register",
                   fail_fast=proc.exit_reason)
        assert wait_until(lambda: _greet(ingress_url), 30, interval=0.2, what="a greeting") == "Hello ada!"

        source.write_text(GREETER_V2)
        wait_until(lambda: _handlers(admin_url) == ["greet", "shout"], 60, interval=0.2,
                   what="the changed service to be registered again", fail_fast=proc.exit_reason)
        assert _greet(ingress_url) == "Bonjour ada!"
        assert _greet(ingress_url, "shout") == "ADA"
        assert "restarting the service" in proc.log_text()
    finally:
        proc.terminate(timeout=20, sig=signal.SIGINT)
    assert not port_accepts("127.0.0.1", admin) and not port_accepts("127.0.0.1", service)
    assert (data / "partition.db").exists(), "a given data dir is kept"
