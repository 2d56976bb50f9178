"""Subprocess for the crash test: appends to a log forever and prints each acknowledged LSN.

    python crash_writer.py DIRECTORY SEGMENT_SIZE APPENDERS asyncio|uvloop

Each line on stdout is one acknowledged LSN, flushed at once, so whatever the parent read
before it killed this process was acknowledged. Payloads are derived from the LSN they are
expected to get (`payload_of`); a returned LSN that differs is reported and ends the run.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys

from perdure.server.log.local import LocalLog, LocalLogConfig


def payload_of(lsn: int) -> bytes:
    if lsn % 53 == 0:
        return (b"big %d;" % lsn) * 600  # spans several pages
    return (b"lsn %d;" % lsn) * (1 + lsn % 40)


async def run(directory: str, segment_size: int, appenders: int) -> None:
    log = await LocalLog.open(directory, LocalLogConfig(segment_size=segment_size))
    next_lsn = itertools.count(log.last_lsn + 1)
    out = sys.stdout

    def acknowledge(expected: list[int], got: list[int]) -> None:
        if got != expected:
            out.write(f"MISMATCH expected {expected} got {got}\n")
            out.flush()
            os._exit(3)
        out.write("".join(f"{lsn}\n" for lsn in got))
        out.flush()

    async def appender(number: int) -> None:
        for round_ in itertools.count():
            if (number + round_) % 5 == 0:
                expected = [next(next_lsn) for _ in range(3)]
                got = await log.append_batch([payload_of(lsn) for lsn in expected])
            else:
                expected = [next(next_lsn)]
                got = [await log.append(payload_of(expected[0]))]
            acknowledge(expected, got)

    async with asyncio.TaskGroup() as group:
        for number in range(appenders):
            group.create_task(appender(number))


def main() -> None:
    directory, segment_size, appenders, loop = sys.argv[1:5]
    coroutine = run(directory, int(segment_size), int(appenders))
    if loop == "uvloop":
        import uvloop

        uvloop.run(coroutine)
    else:
        asyncio.run(coroutine)


if __name__ == "__main__":
    main()
