"""Durability under SIGKILL: every LSN a writer process saw acknowledged is still there,
with its payload, and the log has no gap, after killing it at random points."""

from __future__ import annotations

import asyncio
import importlib.util
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from perdure.server.log.local import LocalLog, LocalLogConfig

WRITER = Path(__file__).with_name("crash_writer.py")
SEGMENT_SIZE = 16 * 1024  # small, so that kills also land around rollovers
KILLS = 5


def load_payload_of() -> Callable[[int], bytes]:
    # The writer is a script run by path, not a module on sys.path.
    spec = importlib.util.spec_from_file_location("perdure_log_crash_writer", WRITER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.payload_of


payload_of = load_payload_of()


def run_writer_until_killed(directory: Path, acks_wanted: int, loop: str) -> list[int]:
    """Start the writer, read `acks_wanted` acknowledged LSNs, SIGKILL it, return all read."""
    process = subprocess.Popen(
        [sys.executable, str(WRITER), str(directory), str(SEGMENT_SIZE), "16", loop],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    acked: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while len(acked) < acks_wanted:
            line = process.stdout.readline()
            assert line, f"writer ended early: {process.stderr.read().decode()}"
            assert not line.startswith(b"MISMATCH"), line
            acked.append(int(line))
            assert time.monotonic() < deadline
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        # Lines already in the pipe were acknowledged too, so they must survive as well.
        *complete, _unterminated = process.stdout.read().split(b"\n")
        acked.extend(int(line) for line in complete)
        process.stdout.close()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    return acked


async def check_log(directory: Path, acked: list[int]) -> int:
    async with await LocalLog.open(directory, LocalLogConfig(segment_size=SEGMENT_SIZE)) as log:
        lsn = 0
        for lsn, payload in log.read_from(1):
            assert payload == payload_of(lsn), f"LSN {lsn} holds the wrong payload"
        assert lsn == log.last_lsn  # read_from checks the LSNs are gapless
        assert max(acked) <= log.last_lsn, "an acknowledged record was lost"
        return log.last_lsn


def test_acknowledged_records_survive_sigkill_at_random_points(tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    print(f"crash test seed: {seed}")
    rng = random.Random(seed)
    directory = tmp_path / "log"
    previous_last = 0
    for kill in range(KILLS):
        loop = "uvloop" if kill % 2 else "asyncio"
        acked = run_writer_until_killed(directory, rng.randint(1, 4000), loop)
        # The writer resumed right after the recovered tail and acked in LSN order.
        assert acked == list(range(previous_last + 1, previous_last + 1 + len(acked))), seed
        previous_last = asyncio.run(check_log(directory, acked))
    assert previous_last > KILLS, seed
