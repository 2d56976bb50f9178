"""Randomized simulation: random handler programs against a simulated runtime that replays,
suspends and loses responses at random points.

The runtime keeps the journal the way Restate does (commands as the SDK sent them, then the
notifications it derives), re-invokes in request/response mode after every suspension or
failure, and sometimes "crashes": it keeps only a random prefix of an attempt's response, as if
the connection broke mid-way. The handler interprets a random list of operations (steps,
state reads and writes, sleeps, calls, combinators). Invariants checked for every seed:

- the final output equals what a plain interpreter of the program computes;
- a step's closure never runs again once its completion is in the journal;
- every attempt ends with exactly one End, Suspension or Error, last;
- replay accepts eager or lazy state reads whichever way the runtime preloads state.
"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import timedelta
from typing import Any

import pytest

import perdure
from perdure.protocol.framing import FrameDecoder, encode_frame, encode_message
from perdure.protocol.messages import MessageType as T
from perdure.protocol.messages import decode_message, pb
from perdure.sdk.invocation import Attempt
from perdure.sdk.machine import Machine
from tests.sdk import frames as f

OPS = ("step", "set", "get", "sleep", "call", "gather")


def random_program(rng: random.Random) -> list[tuple[str, int]]:
    return [(rng.choice(OPS), rng.randint(0, 9)) for _ in range(rng.randint(1, 12))]


def interpret(program: list[tuple[str, int]]) -> int:
    """What the handler must return, computed without any SDK."""
    total, state = 0, {}
    for i, (op, n) in enumerate(program):
        if op == "step":
            total += i * 10 + n
        elif op == "set":
            state[f"k{n % 3}"] = total
        elif op == "get":
            total += state.get(f"k{n % 3}", 0)
        elif op == "call":
            total += n * 2
        elif op == "gather":
            total += (i * 10 + n) + n * 2
    return total


class World:
    """The runtime's side: journal, state, and the execution counters of the closures."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.journal: list[bytes] = []
        self.state: dict[str, bytes] = {}
        self.executions: dict[int, int] = {}
        self.stored_completion: set[int] = set()  # program indices whose step result is stored
        self.step_of_completion: dict[int, int] = {}  # completion id -> program index

    def apply(self, mtype: int, msg: Any) -> list[bytes]:
        """Store one command (or proposal) of the SDK; return it plus derived notifications."""
        if mtype == T.PROPOSE_RUN_COMPLETION:
            cid = msg.result_completion_id
            index = self.step_of_completion.get(cid)
            if index is not None:
                self.stored_completion.add(index)
            return [f.run_completion(cid, msg.value)]
        entries = [encode_message(msg)]
        if mtype == T.RUN_COMMAND:
            self.step_of_completion[msg.result_completion_id] = int(msg.name.split("-")[1])
        elif mtype == T.SET_STATE_COMMAND:
            self.state[msg.key.decode()] = msg.value.content
        elif mtype == T.GET_LAZY_STATE_COMMAND:
            value = self.state.get(msg.key.decode())
            entries.append(
                f.completion(T.GET_LAZY_STATE_COMPLETION, msg.result_completion_id, value)
            )
        elif mtype == T.SLEEP_COMMAND:
            entries.append(f.completion(T.SLEEP_COMPLETION, msg.result_completion_id))
        elif mtype == T.CALL_COMMAND:
            callee = pb.NotificationTemplate(
                completion_id=msg.invocation_id_notification_idx, invocation_id="inv_1callee"
            )
            entries.append(
                encode_frame(T.CALL_INVOCATION_ID_COMPLETION, callee.SerializeToString())
            )
            doubled = str(int(msg.parameter) * 2).encode()
            entries.append(f.completion(T.CALL_COMPLETION, msg.result_completion_id, doubled))
        return entries


def build_service(world: World) -> Any:
    svc = perdure.VirtualObject("Sim", enable_lazy_state=True)

    @svc.handler()
    async def run(ctx: perdure.ObjectContext, program: list) -> int:
        total = 0
        for i, (op, n) in enumerate(program):

            def step(index: int = i, n: int = n) -> int:
                world.executions[index] = world.executions.get(index, 0) + 1
                assert index not in world.stored_completion, (
                    f"step {index} ran again after its result was stored"
                )
                if world.rng.random() < 0.15:
                    raise ValueError("flaky")
                return index * 10 + n

            if op == "step":
                total += await ctx.run_typed(f"step-{i}", step)
            elif op == "set":
                ctx.set(f"k{n % 3}", total)
            elif op == "get":
                total += await ctx.get(f"k{n % 3}") or 0
            elif op == "sleep":
                await ctx.sleep(timedelta(milliseconds=n))
            elif op == "call":
                total += int(await ctx.generic_call("Echo", "double", str(n).encode()))
            elif op == "gather":
                a = ctx.run_typed(f"step-{i}", step)
                b = ctx.generic_call("Echo", "double", str(n).encode())
                await perdure.gather(a, b)
                total += await a + int(await b)
        return total

    return svc.handlers["run"]


async def attempt_once(
    world: World, handler: Any, program_json: bytes, version: int
) -> list[tuple[int, Any]]:
    entries = [f.input_command(program_json), *world.journal]
    if world.rng.random() < 0.5:  # eager state: the whole map, complete
        start = f.start(len(entries), key="sim", state=dict(world.state), partial_state=False)
    else:  # lazy state: nothing preloaded
        start = f.start(len(entries), key="sim", partial_state=True)
    body = start + b"".join(entries)
    chunks: list[bytes | None] = [body, None]
    out = bytearray()

    async def read() -> bytes | None:
        return chunks.pop(0) if chunks else None

    async def write(data: bytes) -> None:
        out.extend(data)

    machine = Machine(version, service="Sim", handler="run")
    await asyncio.wait_for(
        Attempt(machine, handler, read, write, read_all_before_start=True).run(), 5
    )
    f.assert_one_terminal(bytes(out), version)
    decoder = FrameDecoder()
    return [
        (fr.type, decode_message(fr.type, fr.payload, version)) for fr in decoder.feed(bytes(out))
    ]


async def simulate(seed: int, version: int) -> None:
    rng = random.Random(seed)
    program = random_program(rng)
    world = World(rng)
    handler = build_service(world)
    program_json = json.dumps(program).encode()
    for _ in range(500):
        frames = await attempt_once(world, handler, program_json, version)
        # A lost response: the runtime only stored what arrived before the break.
        if rng.random() < 0.2:
            frames = frames[: rng.randint(0, len(frames))]
        for mtype, msg in frames:
            if mtype == T.OUTPUT_COMMAND:
                assert json.loads(msg.value.content) == interpret(program), (seed, program)
                return
            if mtype in (T.END, T.SUSPENSION, T.ERROR):
                if mtype == T.ERROR:
                    assert msg.code == 500 and "flaky" in msg.message, msg
                break
            if mtype == T.AWAITING_ON:
                continue
            world.journal.extend(world.apply(mtype, msg))
    raise AssertionError(f"seed {seed}: no output after 500 attempts")


@pytest.mark.parametrize("version", [5, 6, 7])
@pytest.mark.parametrize("seed", range(40))
async def test_random_programs_converge_and_never_re_execute_a_stored_step(
    seed: int, version: int
) -> None:
    await simulate(seed * 31 + version, version)
