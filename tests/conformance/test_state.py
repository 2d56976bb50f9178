"""State of virtual objects, eager (state sent with the invocation) and lazy (read on
demand): what one invocation writes, a later one reads back, per key."""

from __future__ import annotations

import pytest

OBJECTS = pytest.mark.parametrize("obj", ["StateEager", "StateLazy"])


@OBJECTS
def test_value_set_by_one_invocation_is_read_by_the_next(target, tag, obj):
    target.ok(obj, "set", {"greeting": "hello", "count": 3, "nested": {"a": [1, 2]}}, key=tag)

    assert target.ok(obj, "get", "greeting", key=tag) == {"value": "hello"}
    assert target.ok(obj, "get", "count", key=tag) == {"value": 3}
    assert target.ok(obj, "get", "nested", key=tag) == {"value": {"a": [1, 2]}}


@OBJECTS
def test_get_of_a_missing_key_returns_none(target, tag, obj):
    assert target.ok(obj, "get", "nothing-here", key=tag) == {"value": None}


@OBJECTS
def test_clear_removes_only_that_key(target, tag, obj):
    target.ok(obj, "set", {"a": 1, "b": 2}, key=tag)

    target.ok(obj, "clear", "a", key=tag)

    assert target.ok(obj, "get", "a", key=tag) == {"value": None}
    assert target.ok(obj, "get", "b", key=tag) == {"value": 2}
    assert target.ok(obj, "keys", key=tag) == {"keys": ["b"]}


@OBJECTS
def test_clear_all_removes_every_key(target, tag, obj):
    target.ok(obj, "set", {"a": 1, "b": 2, "c": 3}, key=tag)

    target.ok(obj, "clear_all", key=tag)

    assert target.ok(obj, "keys", key=tag) == {"keys": []}
    assert target.ok(obj, "get", "b", key=tag) == {"value": None}


@OBJECTS
def test_state_keys_lists_every_key_set(target, tag, obj):
    assert target.ok(obj, "keys", key=tag) == {"keys": []}

    target.ok(obj, "set", {"zeta": 1, "alpha": 2}, key=tag)
    target.ok(obj, "set", {"mid": 3}, key=tag)

    assert target.ok(obj, "keys", key=tag) == {"keys": ["alpha", "mid", "zeta"]}


@OBJECTS
def test_reads_in_one_invocation_see_its_own_writes(target, tag, obj):
    target.ok(obj, "set", {"a": "before"}, key=tag)

    seen = target.ok(obj, "own_writes", key=tag)

    assert seen == {
        "initial": "before",
        "after_set": 1,
        "after_overwrite": {"nested": [1, 2]},
        "keys": ["a", "b", "c"],
        "after_clear": None,
        "keys_after_clear": ["b", "c"],
        "keys_after_clear_all": [],
        "b_after_clear_all": None,
        "d": 4,
    }
    # ... and what the invocation left behind is what later invocations see.
    assert target.ok(obj, "keys", key=tag) == {"keys": ["d"]}
    assert target.ok(obj, "get", "d", key=tag) == {"value": 4}


@OBJECTS
def test_shared_handler_reads_state_written_by_an_exclusive_one(target, tag, obj):
    target.ok(obj, "set", {"x": [1, "two"], "y": None}, key=tag)

    assert target.ok(obj, "read", "x", key=tag) == {"value": [1, "two"]}
    assert target.ok(obj, "read", "missing", key=tag) == {"value": None}
    assert target.ok(obj, "shared_keys", key=tag) == {"keys": ["x", "y"]}


@OBJECTS
def test_state_is_separate_per_key(target, tag, obj):
    target.ok(obj, "set", {"who": "first"}, key=tag + "-1")
    target.ok(obj, "set", {"who": "second"}, key=tag + "-2")

    assert target.ok(obj, "get", "who", key=tag + "-1") == {"value": "first"}
    assert target.ok(obj, "get", "who", key=tag + "-2") == {"value": "second"}
    assert target.ok(obj, "get", "who", key=tag + "-3") == {"value": None}


def test_state_of_one_key_is_the_same_through_eager_and_lazy_reads(target, tag):
    """The same values come back whether the object reads state eagerly or lazily."""
    values = {"n": 42, "s": "text", "l": [1, {"k": "v"}], "t": True}
    target.ok("StateEager", "set", values, key=tag)
    target.ok("StateLazy", "set", values, key=tag)

    eager = {k: target.ok("StateEager", "get", k, key=tag)["value"] for k in values}
    lazy = {k: target.ok("StateLazy", "get", k, key=tag)["value"] for k in values}

    assert eager == lazy == values


@pytest.mark.parametrize(
    ("obj", "get_entries", "keys_entries"),
    [
        ("StateEager", ["Command: GetEagerState"], ["Command: GetEagerStateKeys"]),
        (
            "StateLazy",
            ["Command: GetLazyState", "Notification: GetLazyState"],
            ["Command: GetLazyStateKeys", "Notification: GetLazyStateKeys"],
        ),
    ],
)
def test_state_reads_are_journaled_eagerly_or_lazily_as_the_object_declares(
    target, tag, obj, get_entries, keys_entries
):
    """An object with lazy state gets no state with its invocations: each read is a
    GetLazyState command the server completes. Read back from ``sys_journal``."""
    target.ok(obj, "set", {"a": 1}, key=tag)

    for handler, arg, expected in [("get", "a", get_entries), ("keys", None, keys_entries)]:
        resp = target.call(obj, handler, arg, key=tag)
        assert resp.status == 200, resp.text
        rows = target.query(
            "SELECT index, entry_type FROM sys_journal "
            f"WHERE id = '{resp.headers['x-restate-id']}' ORDER BY index"
        )
        assert [r["entry_type"] for r in rows] == ["Command: Input", *expected, "Command: Output"]
