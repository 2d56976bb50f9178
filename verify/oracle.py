"""The oracle: checks the invariants of shared/design/architecture.md on what a run left.

- ``check_events``: one writer per key (no two invocations' exclusive handler attempts on a
  key overlap) and exactly-once steps (no `run` closure executes after the handler got past
  that step), from the events file of ``verify.interpreter`` plus the runner's markers;
- ``check_state``: the state of every key equals the model;
- ``check_results``: every acknowledged program completed with the model's result;
- ``replay_log``: applying the server's log to an empty store gives the server's store, row
  by row in every table.

Every check returns a list of ``Finding``; an empty list means the invariant held. Reads the
server's data directory only while the server is stopped.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verify.programs import matches_allowing_exhaustion

__all__ = ["EventStats", "Finding", "ReplayStats", "check_events", "check_results",
           "check_state", "compare_stores", "read_state", "replay_log"]


@dataclass(slots=True)
class Finding:
    invariant: str
    what: str
    details: list[str] = field(default_factory=list)
    # An invariant violation fails the run; a warning (e.g. a `run` step that ran out of
    # attempts because crashes counted as failures) is reported but does not.
    violation: bool = True

    def render(self) -> str:
        head = f"[{'VIOLATION' if self.violation else 'warning'}] {self.invariant}: {self.what}"
        more = [f"    ... and {len(self.details) - 20} more"] if len(self.details) > 20 else []
        return "\n".join([head, *("    " + d for d in self.details[:20]), *more])


@dataclass(slots=True)
class EventStats:
    lines: int = 0
    service_starts: int = 0
    attempts: int = 0
    step_runs: int = 0
    step_reruns_before_ack: int = 0
    invocations: int = 0


def _parse(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    out = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if parts and parts[-1].startswith("@"):
            parts.pop()  # the writer's clock: for people reading the file, not for the checks
        if parts:
            out.append([str(number), *parts])
    return out


def check_events(path: Path) -> tuple[list[Finding], EventStats]:
    """One writer per key and no step re-run after acknowledgement, from the events file.

    The file's line order is a real-time order (single ``O_APPEND`` writes). An attempt is
    open from its ``enter`` to its ``exit``, or to the ``killed <pid>`` marker the runner
    writes once a SIGKILLed service process is reaped (or the next ``start``, if a process
    died without the runner knowing).

    A zombie is an attempt that keeps running after its invocation started a newer attempt:
    when a fault hides the end of its stream (the proxy stalls the connection while the
    server dies), the SDK cannot know it is dead, and no engine can stop its code. Its
    journal writes go nowhere (the state check would see them otherwise). So an overlap or a
    step re-run by a zombie, with a proxy stall between the zombie's start and its
    successor's, is reported as a warning; any other overlap or re-run is a violation (a
    server kill, a reset or a close alone ends the SDK's stream at once).

    A stall can also hide the *start* of an attempt: the dead server's Start reaches the SDK
    when the stall ends, after the restarted server ran the attempt that replaced it, so the
    zombie enters last. The runner names every proxy connection (``link <n> <port>``) before
    anything crosses it and each ``enter`` names its connection's port, so an attempt whose
    connection was opened before a ``server-killed`` line, acting after that line, came from
    a dead server: a zombie too, whatever the order of the enters."""
    stats = EventStats()
    lines = _parse(path)
    stats.lines = len(lines)
    open_by_key: dict[str, dict[str, tuple[str, int]]] = defaultdict(dict)  # key -> token -> (inv, line)
    enter_line: dict[str, int] = {}
    attempts_of_inv: dict[str, list[tuple[int, str]]] = defaultdict(list)  # (enter line, token)
    stall_lines: list[int] = []
    overlaps: list[tuple[bool, str]] = []
    acked: dict[tuple[str, str], tuple[str, int]] = {}
    reruns: list[tuple[bool, str]] = []
    runs: dict[tuple[str, str], int] = defaultdict(int)
    link_of_port: dict[str, tuple[str, int]] = {}  # peer port -> (connection, its line)
    link_of_token: dict[str, tuple[str, int]] = {}
    kill_lines: list[int] = []  # server-killed markers

    def close_process(pid: str | None) -> None:
        for tokens in open_by_key.values():
            for token in [t for t in tokens if pid is None or t.split(".")[0] == pid]:
                del tokens[token]

    def zombie(inv: str, token: str, before: int) -> str | None:
        """How ``token`` of ``inv`` was a zombie at line ``before``, or None if it was not."""
        first = enter_line.get(token, 0)
        newer = [(n, t) for n, t in attempts_of_inv[inv] if first < n < before]
        if not newer:
            return None
        successor_line, successor = newer[0]
        stalls = [n for n in stall_lines if first < n < successor_line]
        if not stalls:
            return None
        return (f"a zombie: attempt {successor} (line {successor_line}) superseded it after "
                f"a proxy stall (line {stalls[-1]}) hid the end of its stream")

    def orphan(token: str, at: int) -> str | None:
        """How ``token`` came from a server that was dead at line ``at``, or None."""
        link = link_of_token.get(token)
        if link is None:
            return None
        number, opened = link
        kills = [n for n in kill_lines if opened < n < at]
        if not kills:
            return None
        return (f"a zombie: it came on connection #{number} (line {opened}), opened by a "
                f"server killed at line {kills[0]}")

    for number_text, kind, *rest in lines:
        number = int(number_text)
        if kind == "proxy" and rest and rest[0].startswith("stall"):
            stall_lines.append(number)
        if kind == "link":
            link_of_port[rest[1]] = (rest[0], number)
        elif kind == "server-killed":
            kill_lines.append(number)
        elif kind == "start":
            stats.service_starts += 1
            close_process(None)  # one service process at a time: older attempts are dead
        elif kind == "killed":
            close_process(rest[0])
        elif kind == "enter":
            where, inv, token, *port = rest  # no port: a file from before ports were noted
            stats.attempts += 1
            attempts_of_inv[inv].append((number, token))
            enter_line[token] = number
            if port and port[0] in link_of_port:
                link_of_token[token] = link_of_port[port[0]]
            for other_token, (other_inv, other_line) in open_by_key[where].items():
                if other_inv == inv:
                    continue
                why = (zombie(other_inv, other_token, number) or orphan(other_token, number)
                       or orphan(token, number))
                overlaps.append((why is not None,
                                 f"{where}: {inv} entered (attempt {token}, line {number}) while "
                                 f"{other_inv} was inside (attempt {other_token}, line "
                                 f"{other_line})" + (f"; {why}" if why else "")))
            open_by_key[where][token] = (inv, number)
        elif kind == "exit":
            where, inv, token = rest
            open_by_key[where].pop(token, None)
        elif kind == "run":
            inv, step, token = rest
            stats.step_runs += 1
            runs[(inv, step)] += 1
            if (inv, step) in acked:
                ack_token, ack_line = acked[(inv, step)]
                why = zombie(inv, token, number) or orphan(token, number)
                reruns.append((why is not None,
                               f"line {number}: step {step} of {inv} ran (attempt {token}) after "
                               f"line {ack_line} acknowledged it (attempt {ack_token})"
                               + (f"; {why}" if why else "")))
        elif kind == "acked":
            inv, step, token = rest
            acked.setdefault((inv, step), (token, number))
    stats.invocations = len(attempts_of_inv)
    stats.step_reruns_before_ack = sum(n - 1 for n in runs.values() if n > 1)

    findings = []
    for invariant, what, items in (("one writer per key", "overlaps of exclusive handlers",
                                    overlaps),
                                   ("exactly-once steps", "step executions after the step's "
                                    "completion was acknowledged", reruns)):
        real = [text for excused, text in items if not excused]
        zombies = [text for excused, text in items if excused]
        if real:
            findings.append(Finding(invariant, f"{len(real)} {what}", real))
        if zombies:
            findings.append(Finding(invariant, f"{len(zombies)} {what} by zombie attempts after "
                                    "a proxy stall (expected: see check_events)", zombies,
                                    violation=False))
    return findings, stats


def _decode(value: bytes) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def read_state(partition_db: Path, prefix: str = "Verify") -> dict[tuple[str, str], dict[str, Any]]:
    """Every key's state in the server's store (services named ``prefix...``)."""
    db = sqlite3.connect(f"file:{partition_db}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT service, key, state_key, value FROM state "
                          "WHERE service LIKE ? ORDER BY 1, 2, 3", (prefix + "%",)).fetchall()
    finally:
        db.close()
    out: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
    for service, key, state_key, value in rows:
        name = state_key.decode() if isinstance(state_key, bytes) else state_key
        out[(service, key)][name] = _decode(value)
    return dict(out)


def check_state(expected: dict[tuple[str, str], dict[str, Any]],
                actual: dict[tuple[str, str], dict[str, Any]], source: str,
                touched_by: dict[tuple[str, str], set[int]] | None = None) -> list[Finding]:
    details = []
    for obj in sorted(set(expected) | set(actual)):
        want, have = expected.get(obj, {}), actual.get(obj, {})
        if want == have:
            continue
        diffs = [f"{name}: expected {want.get(name, '<absent>')!r}, found "
                 f"{have.get(name, '<absent>')!r}"
                 for name in sorted(set(want) | set(have)) if want.get(name) != have.get(name)
                 or (name in want) != (name in have)]
        who = ""
        if touched_by is not None and touched_by.get(obj):
            who = f" (touched by programs {sorted(touched_by[obj])[:12]})"
        details.append(f"{obj[0]}/{obj[1]}{who}: " + "; ".join(diffs))
    if not details:
        return []
    return [Finding("state equals the model", f"{len(details)} keys differ ({source})", details)]


def check_results(expected: dict[int, Any], outcomes: dict[int, Any]) -> tuple[list[Finding], int]:
    """``outcomes[pid]`` is ``("ok", result)``, ``("failed", message)``, ``("lost", why)``,
    ``("unacknowledged", why)`` or ``("pending", why)``. Returns findings and the number of
    `run` steps that ran out of attempts."""
    wrong, failed, lost, missing, unacked = [], [], [], [], []
    exhausted = 0
    for pid, want in sorted(expected.items()):
        outcome = outcomes.get(pid, ("unacknowledged", "never submitted"))
        kind, value = outcome
        if kind == "ok":
            ok, n = matches_allowing_exhaustion(want, value)
            exhausted += n
            if not ok:
                wrong.append(f"program {pid}: expected {json.dumps(want)}, got {json.dumps(value)}")
        elif kind == "failed":
            failed.append(f"program {pid}: {value}")
        elif kind == "lost":
            lost.append(f"program {pid}: {value}")
        elif kind == "pending":
            missing.append(f"program {pid}: {value}")
        else:
            unacked.append(f"program {pid}: {value}")
    findings = []
    if lost:
        findings.append(Finding("durability", f"{len(lost)} acknowledged invocations lost", lost))
    if missing:
        findings.append(Finding("durability / liveness",
                                f"{len(missing)} acknowledged invocations never completed", missing))
    if unacked:
        findings.append(Finding("liveness", f"{len(unacked)} programs were never acknowledged "
                                "by the ingress", unacked))
    if failed:
        findings.append(Finding("results equal the model",
                                f"{len(failed)} programs failed", failed))
    if wrong:
        findings.append(Finding("results equal the model",
                                f"{len(wrong)} programs returned a wrong result", wrong))
    if exhausted:
        findings.append(Finding("workload", f"{exhausted} `run` steps ran out of attempts "
                                "(crashes and resets count as failed attempts)", [],
                                violation=False))
    return findings, exhausted


# ---------------------------------------------------------------------- replay


@dataclass(slots=True)
class ReplayStats:
    records: int = 0
    invokes: int = 0
    tables: dict[str, int] = field(default_factory=dict)


async def replay_log(data_dir: Path, scratch: Path) -> tuple[list[Finding], ReplayStats]:
    """Rebuild a store from ``data_dir/log`` into ``scratch`` and compare it, table by table
    and row by row, with ``data_dir/partition.db``. The server must be stopped."""
    # Server modules are imported here only: the rest of the oracle needs none of them.
    from perdure.server.log.local import LocalLog
    from perdure.server.partition.generated import records_pb2 as rec
    from perdure.server.partition.state_machine import StateMachine
    from perdure.server.partition.store import Store

    stats = ReplayStats()
    scratch.unlink(missing_ok=True)
    store = Store(scratch)
    machine = StateMachine(store)
    log = await LocalLog.open(data_dir / "log")
    try:
        if log.first_lsn != 1:
            return [Finding("determinism", f"the log was trimmed up to LSN {log.first_lsn - 1}; "
                            "cannot replay from an empty store", violation=False)], stats
        batch: list[tuple[int, rec.Record]] = []

        def flush() -> None:
            with store.transaction():
                for lsn, record in batch:
                    machine.apply(lsn, record)
                store.set_applied_lsn(batch[-1][0])
            batch.clear()

        for lsn, payload in log.read_from(1):
            record = rec.Record.FromString(payload)
            stats.records += 1
            if record.WhichOneof("kind") == "invoke":
                stats.invokes += 1
            batch.append((lsn, record))
            if len(batch) >= 1000:
                flush()
        if batch:
            flush()
    finally:
        await log.close()
        store.close()
    findings = compare_stores(data_dir / "partition.db", scratch, stats)
    return findings, stats


def _tables(db: sqlite3.Connection) -> list[str]:
    return [r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name")]


def compare_stores(server_db: Path, replayed_db: Path, stats: ReplayStats) -> list[Finding]:
    a = sqlite3.connect(f"file:{server_db}?mode=ro", uri=True)
    b = sqlite3.connect(f"file:{replayed_db}?mode=ro", uri=True)
    details: list[str] = []
    try:
        ta, tb = _tables(a), _tables(b)
        if ta != tb:
            details.append(f"tables differ: server {ta}, replayed {tb}")
        for table in sorted(set(ta) & set(tb)):
            cols_a = [r[1] for r in a.execute(f"PRAGMA table_info({table})")]
            cols_b = [r[1] for r in b.execute(f"PRAGMA table_info({table})")]
            if cols_a != cols_b:
                details.append(f"{table}: columns differ: server {cols_a}, replayed {cols_b}")
                continue
            order = ", ".join(f'"{c}"' for c in cols_a)
            rows_a = a.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
            rows_b = b.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
            stats.tables[table] = len(rows_a)
            if rows_a == rows_b:
                continue
            set_a, set_b = set(rows_a), set(rows_b)
            only_a = [r for r in rows_a if r not in set_b]
            only_b = [r for r in rows_b if r not in set_a]
            details.append(f"{table}: {len(rows_a)} rows on the server, {len(rows_b)} replayed; "
                           f"{len(only_a)} only on the server, {len(only_b)} only replayed")
            details.extend(_row_diffs(table, cols_a, only_a, only_b))
    finally:
        a.close()
        b.close()
    if not details:
        return []
    return [Finding("determinism", "replaying the log into an empty store gives a different "
                    "store", details)]


def _row_diffs(table: str, cols: list[str], only_a: list[tuple], only_b: list[tuple]) -> list[str]:
    """Pair rows by their first column (the key in every table) and name the columns that differ."""
    out = []
    by_key_b = {r[0]: r for r in only_b}
    for row in only_a[:5]:
        other = by_key_b.get(row[0])
        if other is None:
            out.append(f"  {table} server-only row: {_short(dict(zip(cols, row, strict=True)))}")
            continue
        diffs = {c: (x, y) for c, x, y in zip(cols, row, other, strict=True) if x != y}
        out.append(f"  {table} row {_short(row[0])}: server vs replayed {_short(diffs)}")
    keys_a = {r[0] for r in only_a}
    for row in [r for r in only_b if r[0] not in keys_a][:5]:
        out.append(f"  {table} replay-only row: {_short(dict(zip(cols, row, strict=True)))}")
    return out


def _short(value: Any, limit: int = 400) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
