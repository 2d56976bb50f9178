"""The bench workloads as a DBOS Transact app, served over HTTP by aiohttp.

    .venv/bin/python -m bench.dbos_app --port PORT --pg 'postgresql://postgres@127.0.0.1:P'

DBOS is a library: the durable-execution "server" is this process plus PostgreSQL (the
system database ``bench_dbos_sys`` holds workflow status and step outputs). The HTTP
surface mirrors the one the bench drives on perdure and Restate, so the same aiohttp load
generator is used (paths without an SDK suffix):

- ``POST /Bench/noop``  ``x``  -> workflow ``noop(x) -> x``                          (w1)
- ``POST /Bench/steps`` ``n``  -> workflow with ``n`` sequential ``@DBOS.step``s      (w2)
- ``POST /Counter/<key>/add`` ``d`` -> workflow whose one step is a datasource
  transaction ``INSERT .. ON CONFLICT (k) DO UPDATE SET n = n + d RETURNING n`` on a
  ``bench_counter`` table: PostgreSQL's row lock serialises the updates of one key, as
  a virtual object's exclusive handler does; the step's output is checkpointed (w3)
- ``POST /Bench/fanout`` ``n`` -> workflow starting ``n`` child ``noop`` workflows
  (``DBOS.start_workflow_async``) and gathering their results                     (w4)
- ``POST /Bench/<handler>/send`` + ``idempotency-key`` header -> starts the workflow with
  that id (``SetWorkflowID``), answers ``{"invocationId": id}``                 (w5, w6)
- ``GET /restate/invocation/<id>/attach`` -> the workflow's result (``retrieve_workflow``)
- ``sleep(ms)``: a step records the start, ``DBOS.sleep_async`` (a durable sleep),
  returns the lateness; ``slow(n)``: ``n`` x (step + 100 ms durable sleep).

On start-up (``DBOS.launch``) DBOS recovers the workflows this executor left pending,
which is what workload 6 measures after a SIGKILL of this process and PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any


def build(pg: str) -> Any:
    from aiohttp import web
    from dbos import DBOS, AsyncSQLAlchemyDatasource, SetWorkflowID
    from sqlalchemy import text

    DBOS(
        config={
            "name": "perdure-bench",
            "system_database_url": f"{pg}/bench_dbos_sys",
            "log_level": "WARNING",
        }
    )

    @DBOS.step()
    async def step(i: int) -> int:
        return i

    @DBOS.step()
    async def now() -> float:
        return time.time()

    @DBOS.workflow()
    async def noop(x: int) -> int:
        return x

    @DBOS.workflow()
    async def steps(n: int) -> int:
        total = 0
        for i in range(n):
            total += await step(i)
        return total

    @DBOS.workflow()
    async def fanout(n: int) -> int:
        handles = [await DBOS.start_workflow_async(noop, i) for i in range(n)]
        results = await asyncio.gather(*(h.get_result() for h in handles))
        return len(results)

    @DBOS.workflow()
    async def sleep(ms: int) -> float:
        started = await now()
        await DBOS.sleep_async(ms / 1000.0)
        return (time.time() - started) * 1000.0 - ms

    @DBOS.workflow()
    async def slow(n: int) -> int:
        for i in range(n):
            await step(i)
            await DBOS.sleep_async(0.1)
        return n

    handlers = {"noop": noop, "steps": steps, "fanout": fanout, "sleep": sleep, "slow": slow}
    state: dict[str, Any] = {}

    async def on_startup(app: web.Application) -> None:
        ds = await AsyncSQLAlchemyDatasource.create(f"{pg}/postgres")
        async with ds.engine.begin() as conn:
            await conn.execute(
                text("CREATE TABLE IF NOT EXISTS bench_counter (k text PRIMARY KEY, n bigint)")
            )

        @ds.transaction(isolation_level="READ COMMITTED")
        async def add_tx(key: str, delta: int) -> int:
            row = await ds.sql_session().execute(
                text(
                    "INSERT INTO bench_counter (k, n) VALUES (:k, :d) ON CONFLICT (k) "
                    "DO UPDATE SET n = bench_counter.n + excluded.n RETURNING n"
                ),
                {"k": key, "d": delta},
            )
            return int(row.scalar_one())

        @DBOS.workflow()
        async def counter_add(key: str, delta: int) -> int:
            return await add_tx(key, delta)

        state["counter_add"] = counter_add
        DBOS.launch()

    async def on_cleanup(app: web.Application) -> None:
        DBOS.destroy(workflow_completion_timeout_sec=0)

    async def body(request: web.Request) -> Any:
        raw = await request.read()
        return json.loads(raw) if raw else None

    async def call(request: web.Request) -> web.Response:
        fn = handlers.get(request.match_info["handler"])
        if fn is None:
            raise web.HTTPNotFound()
        return web.json_response(await fn(await body(request)))

    async def send(request: web.Request) -> web.Response:
        fn = handlers.get(request.match_info["handler"])
        if fn is None:
            raise web.HTTPNotFound()
        wid = request.headers["idempotency-key"]
        with SetWorkflowID(wid):
            await DBOS.start_workflow_async(fn, await body(request))
        return web.json_response({"invocationId": wid}, status=202)

    async def attach(request: web.Request) -> web.Response:
        handle = await DBOS.retrieve_workflow_async(request.match_info["id"])
        return web.json_response(await handle.get_result())

    async def add(request: web.Request) -> web.Response:
        result = await state["counter_add"](request.match_info["key"], await body(request))
        return web.json_response(result)

    async def health(request: web.Request) -> web.Response:
        return web.json_response("ok")

    app = web.Application()
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.add_routes(
        [
            web.get("/health", health),
            web.post("/Bench/{handler}/send", send),
            web.post("/Bench/{handler}", call),
            web.post("/Counter/{key}/add", add),
            web.get("/restate/invocation/{id}/attach", attach),
        ]
    )
    return app


def main() -> None:
    from aiohttp import web

    p = argparse.ArgumentParser(prog="python -m bench.dbos_app")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pg", required=True, help="postgresql://user@host:port (no database)")
    args = p.parse_args()
    web.run_app(build(args.pg), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
