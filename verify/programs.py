"""Random programs for the interpreter objects, and the model of what they must do.

A program is plain JSON, a pure function of (seed, program id): the interpreter handler
(``verify.interpreter``) reads every operation from its input, so re-executing it on replay
needs no hidden state, and the model here can compute, without running anything, what the
handler must return and what every virtual-object key must hold at the end.

Isolation that makes the model exact whatever the interleaving of programs:

- ``set``/``get``/``clear`` only touch slots private to one program invocation (state keys
  named after the program's path), so their order is the program's own order;
- every increment (direct, through a call, a delayed send or an awakeable) adds to the key's
  shared ``counter``; additions commute, so only their sum matters;
- a program on layer ``L`` calls only objects of layer ``L + 1`` (exclusive handlers never
  wait on each other in a cycle); delayed sends go anywhere (they wait in the inbox).

Must not import any SDK or server module: the runner, the interpreter and the oracle share it.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

__all__ = [
    "COUNTER",
    "Model",
    "WorkloadConfig",
    "generate_program",
    "matches_allowing_exhaustion",
    "object_name",
    "slot_name",
]

COUNTER = "counter"
SLOTS = ("a", "b", "c")
SEND_DELAYS_MS = (0, 0, 50, 300, 1000, 3000)
SLEEPS_MS = (10, 50, 200, 600, 2000)
# Transient failures of a `run` step before it succeeds. The step allows this many plus
# RUN_SPARE_ATTEMPTS attempts, so that crashes during the step (which the server counts as
# failed attempts too) rarely exhaust it; when they do, the result says so (see Model).
RUN_FAILS = (0, 0, 0, 1, 2)
RUN_SPARE_ATTEMPTS = 12


def object_name(layer: int) -> str:
    """The virtual object interpreting programs of one layer."""
    return f"VerifyL{layer}"


def slot_name(path: str, slot: str) -> str:
    """A state key private to the program invocation at ``path``."""
    return f"{path}.{slot}"


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    seed: int
    keys: int = 20
    layers: int = 3
    max_ops: int = 7

    def key(self, index: int) -> str:
        return f"k{index}"

    def all_objects(self) -> list[tuple[str, str]]:
        return [(object_name(layer), self.key(k))
                for layer in range(self.layers) for k in range(self.keys)]


def generate_program(cfg: WorkloadConfig, pid: int) -> dict[str, Any]:
    """Program ``pid`` of the workload seeded by ``cfg.seed``: where it runs and its ops."""
    rng = random.Random(f"verify/{cfg.seed}/{pid}")
    weights = [6, 3, 2][: cfg.layers] + [1] * max(0, cfg.layers - 3)
    layer = rng.choices(range(cfg.layers), weights=weights)[0]
    key = cfg.key(rng.randrange(cfg.keys))
    path = f"p{pid}"
    return {"pid": pid, "layer": layer, "key": key, "path": path,
            "ops": _ops(rng, cfg, layer, path, depth=0)}


def _ops(rng: random.Random, cfg: WorkloadConfig, layer: int, path: str,
         depth: int) -> list[dict[str, Any]]:
    n = rng.randint(2, cfg.max_ops if depth == 0 else 4)
    deeper = layer + 1 < cfg.layers
    kinds = ["set", "get", "clear", "inc", "send_inc", "awk_inc", "sleep", "run", "terr"]
    weights = [4, 4, 1.5, 3, 2, 1.5, 1.5, 2.5, 1]
    if deeper:
        kinds += ["call_inc", "call"]
        weights += [2, 1.5 if depth < 2 else 0]
    ops: list[dict[str, Any]] = []
    for i in range(n):
        kind = rng.choices(kinds, weights=weights)[0]
        op: dict[str, Any] = {"op": kind}
        if kind in ("set", "get", "clear"):
            op["slot"] = rng.choice(SLOTS)
            if kind == "set":
                op["v"] = rng.randrange(1000)
        elif kind in ("inc", "awk_inc"):
            op["n"] = rng.randint(1, 9)
        elif kind == "call_inc":
            op.update(layer=layer + 1, key=cfg.key(rng.randrange(cfg.keys)), n=rng.randint(1, 9))
        elif kind == "send_inc":
            op.update(layer=rng.randrange(cfg.layers), key=cfg.key(rng.randrange(cfg.keys)),
                      n=rng.randint(1, 9), delay_ms=rng.choice(SEND_DELAYS_MS))
        elif kind == "sleep":
            op["ms"] = rng.choice(SLEEPS_MS)
        elif kind == "run":
            op.update(fails=rng.choice(RUN_FAILS), v=rng.randrange(1000))
        elif kind == "terr":
            op.update(how=rng.choice(("run", "call")), msg=f"terr {path}/{i}")
        elif kind == "call":
            sub_path = f"{path}.{i}"
            sub_key = cfg.key(rng.randrange(cfg.keys))
            op.update(layer=layer + 1, key=sub_key,
                      prog={"path": sub_path, "layer": layer + 1, "key": sub_key,
                            "ops": _ops(rng, cfg, layer + 1, sub_path, depth + 1)})
        ops.append(op)
    return ops


class Model:
    """Expected results and final state of the programs added to it.

    ``state[(object, key)]`` maps state key to value; ``result(program)`` is what the
    handler must return: one tagged entry per op that yields something (``["get", v]``,
    ``["run", v]``, ``["awk", n]``, ``["terr", msg]``, ``["call", [...]]``). A `run` step whose
    attempts ran out yields ``["exhausted", msg]`` instead of ``["run", v]``: not an engine bug by itself (crashes count as failed attempts),
    so the oracle reports it apart from the invariants.
    """

    def __init__(self) -> None:
        self.state: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
        self.touched_by: dict[tuple[str, str], set[int]] = defaultdict(set)
        self.increments = 0

    def add(self, prog: dict[str, Any]) -> list[Any]:
        """Account for one top-level program; return its expected result."""
        return self._walk(prog, prog["pid"])

    def _inc(self, obj: tuple[str, str], n: int, pid: int) -> None:
        slots = self.state[obj]
        slots[COUNTER] = slots.get(COUNTER, 0) + n
        self.touched_by[obj].add(pid)
        self.increments += 1

    def _walk(self, prog: dict[str, Any], pid: int) -> list[Any]:
        obj = (object_name(prog["layer"]), prog["key"])
        slots = self.state[obj]
        out: list[Any] = []
        for op in prog["ops"]:
            kind = op["op"]
            if kind == "set":
                slots[slot_name(prog["path"], op["slot"])] = op["v"]
                self.touched_by[obj].add(pid)
            elif kind == "clear":
                slots.pop(slot_name(prog["path"], op["slot"]), None)
            elif kind == "get":
                out.append(["get", slots.get(slot_name(prog["path"], op["slot"]))])
            elif kind == "inc":
                self._inc(obj, op["n"], pid)
            elif kind == "awk_inc":
                self._inc(obj, op["n"], pid)
                out.append(["awk", op["n"]])
            elif kind in ("call_inc", "send_inc"):
                self._inc((object_name(op["layer"]), op["key"]), op["n"], pid)
            elif kind == "run":
                out.append(["run", op["v"]])
            elif kind == "terr":
                out.append(["terr", op["msg"]])
            elif kind == "call":
                out.append(["call", self._walk(op["prog"], pid)])
        return out

    def expected_objects(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Final state of every key that holds anything (empty keys left out)."""
        return {obj: dict(slots) for obj, slots in self.state.items() if slots}


def matches_allowing_exhaustion(expected: Any, actual: Any) -> tuple[bool, int]:
    """Compare a result with the model's, accepting ``["exhausted", msg]`` in place of
    ``["run", v]``. Returns (equal up to exhaustion, number of exhausted steps)."""
    if (isinstance(expected, list) and len(expected) == 2 and expected[0] == "run"
            and isinstance(actual, list) and len(actual) == 2 and actual[0] == "exhausted"):
        return True, 1
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return False, 0
        total = 0
        for e, a in zip(expected, actual, strict=True):
            ok, n = matches_allowing_exhaustion(e, a)
            if not ok:
                return False, 0
            total += n
        return True, total
    return expected == actual, 0
