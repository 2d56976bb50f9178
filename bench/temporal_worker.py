"""The bench workloads as Temporal workflows, and the worker process that runs them.

    .venv/bin/python -m bench.temporal_worker --address 127.0.0.1:PORT --task-queue bench

Workflow types (names are what the load generator in :mod:`bench.engine_temporal` starts):

- ``Noop(x) -> x``              workload 1
- ``Steps(n) -> sum(range(n))`` workload 2: ``n`` sequential activities (Temporal's durable
                                step: each is scheduled by the server, run by this worker,
                                its result recorded in the workflow history); ``StepsLocal``
                                does the same with local activities
- ``Counter`` + update ``add``  workload 3: one long-lived workflow per key (id
                                ``counter-k<i>``) holding the count; each request is an
                                update-with-start, which Temporal serialises per workflow,
                                like a virtual object's exclusive handler
- ``Fanout(n) -> n``            workload 4: ``n`` child ``Noop`` workflows started at once
                                and gathered (each child is its own durable invocation,
                                as each call in the Restate version is)
- ``Sleep(ms) -> lateness ms``  workload 5: a durable timer; lateness is measured with the
                                workflow clock (``workflow.now()``, the start time of the
                                workflow task that resumed after the timer) minus the
                                start, minus ``ms``
- ``Slow(n) -> n``              workload 6: ``n`` x (activity + 100 ms durable timer)
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta

from temporalio import activity, workflow

ACTIVITY_TIMEOUT = timedelta(seconds=60)


@activity.defn(name="step")
async def step(i: int) -> int:
    return i


@workflow.defn(name="Noop")
class Noop:
    @workflow.run
    async def run(self, x: int) -> int:
        return x


@workflow.defn(name="Steps")
class Steps:
    @workflow.run
    async def run(self, n: int) -> int:
        total = 0
        for i in range(n):
            total += await workflow.execute_activity(
                step, i, start_to_close_timeout=ACTIVITY_TIMEOUT
            )
        return total


@workflow.defn(name="StepsLocal")
class StepsLocal:
    """Workload 2 with local activities (run by the worker inside the workflow task, the
    result recorded as a marker): closer to Restate's ``ctx.run`` / a DBOS step, which run
    inline in the handler. ``BENCH_TEMPORAL_STEPS=local`` selects it."""

    @workflow.run
    async def run(self, n: int) -> int:
        total = 0
        for i in range(n):
            total += await workflow.execute_local_activity(
                step, i, start_to_close_timeout=ACTIVITY_TIMEOUT
            )
        return total


@workflow.defn(name="Fanout")
class Fanout:
    @workflow.run
    async def run(self, n: int) -> int:
        wid = workflow.info().workflow_id
        results = await asyncio.gather(
            *(workflow.execute_child_workflow(Noop.run, i, id=f"{wid}-c{i}") for i in range(n))
        )
        return len(results)


@workflow.defn(name="Counter")
class Counter:
    def __init__(self) -> None:
        self.count = 0

    @workflow.run
    async def run(self, start: int = 0) -> int:
        self.count += start
        # An entity workflow: lives until its history is long, then continues as new.
        await workflow.wait_condition(
            lambda: (
                workflow.info().is_continue_as_new_suggested() and workflow.all_handlers_finished()
            )
        )
        workflow.continue_as_new(self.count)

    @workflow.update(name="add")
    async def add(self, delta: int) -> int:
        self.count += delta
        return self.count


@workflow.defn(name="Sleep")
class Sleep:
    @workflow.run
    async def run(self, ms: int) -> float:
        t0 = workflow.now()
        await asyncio.sleep(ms / 1000.0)  # a durable timer inside a workflow
        return (workflow.now() - t0).total_seconds() * 1000.0 - ms


@workflow.defn(name="Slow")
class Slow:
    @workflow.run
    async def run(self, n: int) -> int:
        for i in range(n):
            await workflow.execute_activity(step, i, start_to_close_timeout=ACTIVITY_TIMEOUT)
            await asyncio.sleep(0.1)
        return n


WORKFLOWS = [Noop, Steps, StepsLocal, Fanout, Counter, Sleep, Slow]


async def _main(address: str, task_queue: str) -> None:
    from temporalio.client import Client
    from temporalio.worker import Worker

    client = await Client.connect(address)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=[step],
        # Enough cached workflows for workload 5 (10,000 sleepers) to stay in memory
        # rather than being replayed from history when their timers fire.
        max_cached_workflows=20_000,
    )
    print(f"temporal worker polling {task_queue} at {address}", flush=True)
    await worker.run()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.temporal_worker")
    p.add_argument("--address", required=True)
    p.add_argument("--task-queue", default="bench")
    args = p.parse_args()
    try:
        asyncio.run(_main(args.address, args.task_queue))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
