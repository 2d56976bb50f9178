"""Scenarios ``RequestSigning`` and ``ProxyRequestSigning``: the runtime is given a private
key through ``RESTATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE`` (see ``conftest.py``) and signs
every request to deployments with it; a deployment that only accepts requests signed by
that key (``E2E_REQUEST_SIGNING``) is registered and serves ``Counter`` (the whole app in
``RequestSigning``, ``Counter`` alone in ``ProxyRequestSigning``). The converse check: a
deployment that trusts another key refuses the runtime's discovery, so it is not
registered.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from tests.suite_failures.conftest import APPS
from tests.support import ServiceProcess, http_get, http_post
from tests.support.identity_keys import openssl_identity


class SignedService(ServiceProcess):
    """Ready once it answers ``/health``: it answers an unsigned ``/discover`` with 401."""

    def _discover_ok(self) -> bool:
        return http_get(self.url + "/health", timeout=2).status == 200


@pytest.fixture(scope="module")
def signed_apps(identity, tmp_path_factory) -> Callable[[str, str], ServiceProcess]:
    """``signed_apps(sdk, variant)``: a process of that SDK serving the scenario services
    (``all``), ``Counter`` alone (``counter``), or ``Counter`` for another key (``stranger``)."""
    started: dict[tuple[str, str], ServiceProcess] = {}
    logs = tmp_path_factory.mktemp("signed-apps")
    stranger_key = openssl_identity(tmp_path_factory.mktemp("stranger")).public

    def get(sdk: str, variant: str) -> ServiceProcess:
        if (sdk, variant) not in started:
            suffix = f"Signed{variant.capitalize()}{sdk.capitalize()}"
            env = {"SUITE_SUFFIX": suffix,
                   "SUITE_SERVICES": "" if variant == "all" else "Counter",
                   "E2E_REQUEST_SIGNING": stranger_key if variant == "stranger"
                   else identity.public}
            service = SignedService(APPS[sdk], True, env=env, log_dir=logs,
                                    name=f"svc-{sdk}-{suffix}")
            started[sdk, variant] = service.start()
        return started[sdk, variant]

    try:
        yield get
    finally:
        for service in started.values():
            service.stop()


@pytest.mark.parametrize("variant", ["all", "counter"],
                         ids=["request-signing", "proxy-request-signing"])
def test_signed_deployment_serves_the_runtime_that_signs(stack, signed_apps, variant):
    service = signed_apps(stack.sdk, variant)
    stack.server.register(service.url)
    counter = f"CounterSigned{variant.capitalize()}{stack.sdk.capitalize()}"
    key = uuid.uuid4().hex

    added = stack.server.call(counter, "add", 1, key=key)

    assert added.status == 200, added.text
    assert added.json() == {"oldValue": 0, "newValue": 1}
    got = stack.server.call(counter, "get", key=key)
    assert (got.status, got.json()) == (200, 1), got.text


def test_deployment_trusting_another_key_is_not_registered(stack, signed_apps):
    service = signed_apps(stack.sdk, "stranger")

    resp = http_post(stack.server.admin_url + "/deployments",
                     json={"uri": service.url, "force": True})

    assert not resp.ok, resp.text
    names = {s["name"] for s in stack.server.services()}
    assert f"CounterSignedStranger{stack.sdk.capitalize()}" not in names
