"""The verification runner's own parts, without a server: the oracle must catch each kind of
violation it claims to check (a check that cannot fail is worse than none), the programs and
the fault schedule must be pure functions of the seed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from verify.oracle import ReplayStats, check_events, check_results, check_state, compare_stores
from verify.programs import Model, WorkloadConfig, generate_program, object_name
from verify.runner import RunConfig, fault_schedule


def _events(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "events.txt"
    path.write_text("\n".join(line.strip() for line in text.strip().splitlines()) + "\n")
    return path


def test_two_invocations_inside_one_key_at_once_are_an_overlap(tmp_path):
    findings, _ = check_events(_events(tmp_path, """
        start 10
        enter VerifyL0/k1 invA 10.1
        enter VerifyL0/k1 invB 10.2
        exit VerifyL0/k1 invB 10.2
        exit VerifyL0/k1 invA 10.1
    """))
    assert [f.invariant for f in findings] == ["one writer per key"]
    assert "invB entered" in findings[0].details[0]


def test_attempts_that_follow_each_other_or_share_an_invocation_do_not_overlap(tmp_path):
    findings, stats = check_events(_events(tmp_path, """
        start 10
        enter VerifyL0/k1 invA 10.1
        enter VerifyL0/k1 invA 10.2
        exit VerifyL0/k1 invA 10.1
        exit VerifyL0/k1 invA 10.2
        enter VerifyL0/k1 invB 10.3
        enter VerifyL0/k2 invC 10.4
        exit VerifyL0/k1 invB 10.3
        exit VerifyL0/k2 invC 10.4
    """))
    assert findings == []
    assert (stats.attempts, stats.invocations) == (4, 3)


def test_an_attempt_of_a_killed_process_ends_at_the_kill(tmp_path):
    findings, _ = check_events(_events(tmp_path, """
        start 10
        enter VerifyL0/k1 invA 10.1
        killed 10
        start 11
        enter VerifyL0/k1 invB 11.1
        exit VerifyL0/k1 invB 11.1
    """))
    assert findings == []


def test_a_step_that_runs_after_its_acknowledgement_is_a_violation(tmp_path):
    findings, stats = check_events(_events(tmp_path, """
        start 10
        run invA 0 10.1
        run invA 0 10.1
        acked invA 0 10.1
        acked invA 0 10.2
        run invA 0 10.2
    """))
    assert [f.invariant for f in findings] == ["exactly-once steps"]
    assert len(findings[0].details) == 1
    assert stats.step_reruns_before_ack == 2


def test_state_differences_are_named_per_key():
    want = {("VerifyL0", "k1"): {"counter": 3, "p1.a": 5}}
    assert check_state(want, {("VerifyL0", "k1"): {"counter": 3, "p1.a": 5}}, "db") == []
    findings = check_state(want, {("VerifyL0", "k1"): {"counter": 4},
                                  ("VerifyL1", "k0"): {"counter": 1}}, "db")
    assert len(findings) == 1
    details = "\n".join(findings[0].details)
    assert "counter: expected 3, found 4" in details
    assert "p1.a: expected 5, found '<absent>'" in details
    assert "VerifyL1/k0" in details


def test_results_lost_failed_wrong_and_exhausted_are_told_apart():
    expected = {0: [["run", 1]], 1: [["get", 2]], 2: [], 3: [], 4: []}
    outcomes = {0: ("ok", [["exhausted", "boom"]]), 1: ("ok", [["get", None]]),
                2: ("failed", "HTTP 500"), 3: ("lost", "404")}
    findings, exhausted = check_results(expected, outcomes)
    assert exhausted == 1
    kinds = {(f.invariant, f.violation) for f in findings}
    assert ("durability", True) in kinds
    assert ("liveness", True) in kinds  # program 4 was never acknowledged
    assert ("workload", False) in kinds
    wrong = [f for f in findings if f.what.endswith("wrong result")]
    assert "program 1" in wrong[0].details[0]


def _db(path: Path, rows: list[tuple]) -> Path:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE state (service TEXT, key TEXT, state_key BLOB, value BLOB)")
    db.executemany("INSERT INTO state VALUES (?, ?, ?, ?)", rows)
    db.commit()
    db.close()
    return path


def test_a_store_that_differs_from_its_replay_is_reported_by_table(tmp_path):
    rows = [("VerifyL0", "k1", b"counter", b"3"), ("VerifyL0", "k2", b"counter", b"4")]
    a = _db(tmp_path / "a.db", rows)
    assert compare_stores(a, _db(tmp_path / "b.db", list(reversed(rows))), ReplayStats()) == []
    findings = compare_stores(a, _db(tmp_path / "c.db", rows[:1] + [("VerifyL0", "k2", b"counter", b"5")]),
                              ReplayStats())
    assert [f.invariant for f in findings] == ["determinism"]
    assert findings[0].details[0].startswith("state: 2 rows on the server, 2 replayed")


def test_programs_are_a_pure_function_of_seed_and_id_and_call_only_the_next_layer():
    cfg = WorkloadConfig(seed=7, keys=5, layers=3)
    assert generate_program(cfg, 3) == generate_program(cfg, 3)
    assert generate_program(cfg, 3) != generate_program(WorkloadConfig(seed=8, keys=5), 3)

    def calls(prog):
        for op in prog["ops"]:
            if op["op"] in ("call", "call_inc"):
                assert op["layer"] == prog["layer"] + 1 < cfg.layers
            if op["op"] == "call":
                yield from calls(op["prog"])
                yield op

    assert sum(1 for pid in range(200) for _ in calls(generate_program(cfg, pid))) > 0


def test_the_model_follows_one_program_op_by_op():
    prog = {"pid": 1, "layer": 0, "key": "k0", "path": "p1", "ops": [
        {"op": "set", "slot": "a", "v": 5}, {"op": "get", "slot": "a"},
        {"op": "clear", "slot": "a"}, {"op": "get", "slot": "a"}, {"op": "inc", "n": 2},
        {"op": "send_inc", "layer": 1, "key": "k3", "n": 4, "delay_ms": 0},
        {"op": "awk_inc", "n": 3}, {"op": "set", "slot": "b", "v": 9},
        {"op": "call", "layer": 1, "key": "k3", "prog": {
            "path": "p1.8", "layer": 1, "key": "k3", "ops": [{"op": "run", "fails": 1, "v": 7}]}},
    ]}
    model = Model()
    assert model.add(prog) == [["get", 5], ["get", None], ["awk", 3], ["call", [["run", 7]]]]
    assert model.expected_objects() == {(object_name(0), "k0"): {"counter": 5, "p1.b": 9},
                                        (object_name(1), "k3"): {"counter": 4}}


def test_the_fault_schedule_is_a_pure_function_of_the_seed():
    cfg = RunConfig(seed=5, duration=60, crash_interval=6)
    assert fault_schedule(cfg) == fault_schedule(RunConfig(seed=5, duration=60, crash_interval=6))
    assert fault_schedule(cfg) != fault_schedule(RunConfig(seed=6, duration=60, crash_interval=6))
    assert {f.kind for f in fault_schedule(cfg)} == {"server", "service", "proxy"}
    assert fault_schedule(RunConfig(seed=5, faults=("proxy",))) != []
    assert {f.kind for f in fault_schedule(RunConfig(seed=5, faults=("proxy",)))} == {"proxy"}


def test_the_ci_run_always_crashes_the_server_at_least_five_times():
    from verify.__main__ import CI

    for seed in range(300):
        cfg = RunConfig(seed=seed)
        for k, v in CI.items():
            setattr(cfg, k, v)
        crashes = sum(1 for f in fault_schedule(cfg) if f.kind == "server")
        assert crashes >= CI["min_server_crashes"], (seed, crashes)


def test_a_zombie_attempt_hidden_by_a_proxy_stall_is_a_warning_not_a_violation(tmp_path):
    findings, _ = check_events(_events(tmp_path, """
        start 10
        enter VerifyL0/k1 invA 10.1
        proxy stall-connection-#3-for-1.5s
        server-killed 77
        enter VerifyL0/k1 invA 10.2
        exit VerifyL0/k1 invA 10.2
        enter VerifyL0/k1 invB 10.3
        exit VerifyL0/k1 invB 10.3
        exit VerifyL0/k1 invA 10.1
    """))
    assert [(f.invariant, f.violation) for f in findings] == [("one writer per key", False)]
    assert "a zombie" in findings[0].details[0]


def test_a_superseded_attempt_without_a_stall_is_still_a_violation(tmp_path):
    findings, _ = check_events(_events(tmp_path, """
        start 10
        enter VerifyL0/k1 invA 10.1
        server-killed 77
        enter VerifyL0/k1 invA 10.2
        exit VerifyL0/k1 invA 10.2
        enter VerifyL0/k1 invB 10.3
        run invB 0 10.3
        acked invB 0 10.3
        exit VerifyL0/k1 invB 10.3
        exit VerifyL0/k1 invA 10.1
    """))
    assert [(f.invariant, f.violation) for f in findings] == [("one writer per key", True)]


def test_an_attempt_whose_connection_a_killed_server_opened_is_a_zombie_even_entering_last(tmp_path):
    # A stall held the dead server's Start: its attempt (10.3, on the port of connection 1)
    # enters after the restarted server's attempt (10.2, connection 2) acknowledged the step.
    findings, _ = check_events(_events(tmp_path, """
        start 10
        link 1 50001
        proxy stall-connection-#1-for-1.8s
        server-killed 77
        link 2 50002
        enter VerifyL0/k1 invA 10.2 50002
        run invA 0 10.2
        acked invA 0 10.2
        exit VerifyL0/k1 invA 10.2
        enter VerifyL0/k1 invB 10.4 50002
        enter VerifyL0/k1 invA 10.3 50001
        run invA 0 10.3
        exit VerifyL0/k1 invA 10.3
        exit VerifyL0/k1 invB 10.4
    """))
    assert [(f.invariant, f.violation) for f in findings] == [("one writer per key", False),
                                                            ("exactly-once steps", False)]
    assert all("opened by a server killed at line 4" in f.details[0] for f in findings)


def test_a_rerun_on_a_connection_of_the_live_server_is_still_a_violation(tmp_path):
    # The same port, reused by a connection the restarted server opened: that attempt's
    # writes reach a live server, so its re-run counts.
    findings, _ = check_events(_events(tmp_path, """
        start 10
        link 1 50001
        server-killed 77
        link 2 50002
        enter VerifyL0/k1 invA 10.2 50002
        run invA 0 10.2
        acked invA 0 10.2
        exit VerifyL0/k1 invA 10.2
        link 3 50001
        enter VerifyL0/k1 invA 10.3 50001
        run invA 0 10.3
        exit VerifyL0/k1 invA 10.3
    """))
    assert [(f.invariant, f.violation) for f in findings] == [("exactly-once steps", True)]
