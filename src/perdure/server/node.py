"""Builds one node from its configuration and runs it: log, store, state machine, leader,
invoker, ingress and admin, started in that order and stopped in reverse."""

from __future__ import annotations

import asyncio
import logging
import signal

from perdure.protocol.messages import MessageType
from perdure.server.admin.http import build_admin_app
from perdure.server.config import ServerConfig
from perdure.server.disk_space import DiskSpace
from perdure.server.httpd import App, HttpServer
from perdure.server.identity import RequestSigner
from perdure.server.ingress.http import build_ingress_app
from perdure.server.invoker.invoker import Invoker
from perdure.server.log.local import LocalLog
from perdure.server.metrics import Metrics
from perdure.server.partition.effects import Respond
from perdure.server.partition.leader import Leader
from perdure.server.partition.state_machine import StateMachine
from perdure.server.partition.store import Store
from perdure.server.schema import Schema

__all__ = ["Node", "run_node"]

log = logging.getLogger("perdure.node")


class Node:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._servers: list[HttpServer] = []
        self.metrics = Metrics()
        self.tracing = None

    async def start(self) -> None:
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.schema = Schema(cfg.data_dir / "metadata.db")
        self.log = await LocalLog.open(cfg.data_dir / "log")
        self.log.on_batch_written = self.metrics.log_batch_written
        self.store = Store(cfg.data_dir / "partition.db")
        self.state_machine = StateMachine(self.store, cfg.retry_policy)
        self.leader = Leader(self.log, self.store, self.state_machine)
        replayed = self.leader.recover()
        if replayed:
            log.info("re-applied %d log records to the store", replayed)
        signer = None
        if cfg.request_identity_key_file is not None:
            signer = RequestSigner.from_pem_file(cfg.request_identity_key_file)
            log.info("signing requests to deployments; configure services with the public key %s",
                     signer.key_id)
        if cfg.tracing_endpoint:
            from perdure.server.tracing import Tracing  # loads opentelemetry: only when asked for

            self.tracing = Tracing(cfg.tracing_endpoint)
            self.leader.on_completed = self._trace_completion
            log.info("exporting traces to %s", self.tracing.url)
        self.invoker = Invoker(self.leader, self.schema, cfg, signer, metrics=self.metrics, tracing=self.tracing)
        self.leader.invoker = self.invoker
        await self._serve(build_admin_app(self.schema, cfg, self.invoker.in_flight, leader=self.leader, signer=signer,
                                          metrics=self.metrics), cfg.admin_bind)
        await self._serve(build_ingress_app(self.leader, self.schema, cfg.max_request_body,
                                            DiskSpace(cfg.data_dir, cfg.min_free_disk_bytes), self.metrics,
                                            self.tracing), cfg.ingress_bind)
        # Lead only once both ports are open: restarting a thousand in-flight attempts takes
        # the loop a while, and health checks (and requests, which queue until the flusher
        # runs) should not wait for it. The store is already up to date (recover above).
        self.leader.start()
        log.info("perdure is ready: ingress on %s:%d, admin on %s:%d, data in %s",
                 *cfg.ingress_bind, *cfg.admin_bind, cfg.data_dir)

    def _trace_completion(self, done: Respond) -> None:
        """Emit the invocation span of an invocation that just completed."""
        try:
            row = self.store.get_invocation(done.invocation_id)
            if row is None or self.tracing is None:
                return
            entry = self.store.journal_entry(done.invocation_id, 0)
            self.tracing.invocation_completed(
                row, entry if entry is not None and entry.entry_type == MessageType.INPUT_COMMAND else None,
                success=done.success, code=done.code, message=done.message, completed_at_ms=done.completed_at)
        except Exception:  # noqa: BLE001 - tracing must never stop the partition
            log.exception("could not emit the invocation span of %s", done.invocation_id.hex())

    async def _serve(self, app: App, bind: tuple[str, int]) -> None:
        server = HttpServer(app)
        await server.start(bind[0], bind[1], backlog=1024)
        self._servers.append(server)

    async def stop(self) -> None:
        for server in reversed(self._servers):
            await server.stop()
        self._servers.clear()
        await self.invoker.close()
        await self.leader.close()
        await self.log.close()
        self.store.close()
        self.schema.close()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)


async def run_node(config: ServerConfig) -> None:
    node = Node(config)
    stop = asyncio.Event()
    failure: list[BaseException] = []

    def on_fatal(e: BaseException) -> None:
        failure.append(e)
        stop.set()

    loop = asyncio.get_running_loop()
    # Restate dumps its configuration on SIGUSR1 (Restate's SDK test suite sends it to every
    # runtime it starts); Python's default for SIGUSR1 would end the process.
    loop.add_signal_handler(signal.SIGUSR1, lambda: log.info("configuration: %s", config))
    await node.start()
    node.leader.on_fatal = on_fatal
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await node.stop()
    if failure:
        raise SystemExit(70)
