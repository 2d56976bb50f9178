"""Process and network helpers for perdure's tests, benchmarks and crash runner.

Synchronous on purpose (no event loop needed). Public API:

Networking / polling (:mod:`tests.support.net`):
    ``free_port(host="127.0.0.1") -> int``
    ``wait_until(predicate, timeout, interval=0.02, what="condition", *,
    ignore=(OSError,), fail_fast=None) -> value``  (raises ``WaitTimeout``)
    ``port_accepts(host, port) -> bool``
    ``http_request(method, url, body=None, *, json=None, headers=None,
    timeout=10) -> HttpResponse``, ``http_get``, ``http_post``
    ``HttpResponse(status, headers, body)`` with ``.text``, ``.json()``, ``.ok``

Processes (:mod:`tests.support.process`):
    ``ManagedProcess(argv, *, env=None, cwd=None, log_dir=None, name="process",
    pass_fds=())`` with ``.pid``, ``.returncode``, ``.running``, ``.kill()``,
    ``.terminate(timeout=10, sig=SIGTERM)``, ``.wait(timeout=None)``, ``.log_text()``,
    ``.log_path``; own process group; SIGKILLed at interpreter exit if alive.

Servers (:mod:`tests.support.servers`), same interface for both:
    ``RestateServer(data_dir=None, *, env=None, log_dir=None,
    startup_timeout=30, binary=None, num_partitions=4, node_name=None)``
    ``PerdureServer(data_dir=None, *, env=None, log_dir=None,
    startup_timeout=30, python=None, extra_args=None)``
    ``.start()``, ``.stop()``, ``.kill()``, ``.restart(hard=False)``,
    ``.cleanup()``, ``.ingress_url``, ``.admin_url``, ``.pid``,
    ``.register(uri, use_http_11=False, force=True) -> dict``,
    ``.deployments()``, ``.services()``, ``.admin(method, path, json=None)``,
    ``.call(service, handler, arg=None, *, key=None, raw=None, headers=None,
    send=False) -> HttpResponse``, ``.log_text()``; context managers.

Services (:mod:`tests.support.service`):
    ``ServiceProcess(module_attr, http2=True, *, env=None, port=None,
    log_dir=None, python=None, startup_timeout=20)`` with ``.start()``,
    ``.url``, ``.port``, ``.pid``, ``.stop()`` (SIGINT), ``.kill()``,
    ``.restart(hard=False)``, ``.cleanup()``, ``.register_on(server)``,
    ``.discover()``, ``.log_text()``; context manager. The child is
    :mod:`tests.support.asgi_runner` (hypercorn, h2c + HTTP/1.1).
"""

from .net import (
    HttpResponse,
    WaitTimeout,
    bind_socket,
    free_port,
    http_get,
    http_post,
    http_request,
    port_accepts,
    wait_until,
)
from .paths import REPO_ROOT, RESTATE_CLI_BIN, RESTATE_SERVER_BIN, TOOLS_DIR, child_env, venv_python
from .process import REGISTRY, ManagedProcess, ProcessExited, kill_all_running
from .servers import AdminServer, PerdureServer, RestateServer, ServerStartError
from .service import ServiceProcess

__all__ = [
    "REGISTRY",
    "REPO_ROOT",
    "RESTATE_CLI_BIN",
    "RESTATE_SERVER_BIN",
    "TOOLS_DIR",
    "AdminServer",
    "HttpResponse",
    "ManagedProcess",
    "PerdureServer",
    "ProcessExited",
    "RestateServer",
    "ServerStartError",
    "ServiceProcess",
    "WaitTimeout",
    "bind_socket",
    "child_env",
    "free_port",
    "http_get",
    "http_post",
    "http_request",
    "kill_all_running",
    "port_accepts",
    "venv_python",
    "wait_until",
]
