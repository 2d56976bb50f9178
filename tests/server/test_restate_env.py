"""Restate's environment variables configure the perdure server the way they configure Restate
(`perdure.server.restate_env`)."""

from __future__ import annotations

import pytest

from perdure.server.partition.retry import OnMaxAttempts, RetryPolicy
from perdure.server.restate_env import parse_duration_ms, read_restate_env


@pytest.mark.parametrize(
    ("text", "ms"),
    [("0s", 0), ("1ms", 1), ("500ms", 500), ("10s", 10_000), ("1m 30s", 90_000), ("2h", 7_200_000),
     ("PT1S", 1000), ("PT0.5S", 500)],
)
def test_durations_in_humantime_or_iso_8601(text, ms):
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "10", "5 parsecs", "1s garbage"])
def test_malformed_duration_is_refused(text):
    with pytest.raises(ValueError):
        parse_duration_ms(text)


def test_nothing_set_changes_nothing():
    env = read_restate_env({})
    assert env.retry_policy is None
    assert env.inactivity_timeout_ms is None
    assert env.request_identity_key_file is None


def test_retry_policy_that_kills_after_one_attempt():
    env = read_restate_env({
        "RESTATE_DEFAULT_RETRY_POLICY__MAX_ATTEMPTS": "1",
        "RESTATE_DEFAULT_RETRY_POLICY__ON_MAX_ATTEMPTS": "kill",
        "RESTATE_DEFAULT_RETRY_POLICY__INITIAL_INTERVAL": "1ms",
    })
    policy = env.retry_policy
    assert policy is not None
    assert (policy.max_attempts, policy.on_max_attempts, policy.initial_interval_ms) == (
        1, OnMaxAttempts.KILL, 1)
    assert policy.next_delay_ms(1) is None  # the first failure is the last attempt


def test_unlimited_attempts_and_other_fields_kept():
    policy = read_restate_env({"RESTATE_DEFAULT_RETRY_POLICY__MAX_ATTEMPTS": "unlimited"},
                              RetryPolicy(initial_interval_ms=7)).retry_policy
    assert policy is not None and policy.max_attempts is None and policy.initial_interval_ms == 7


def test_invoker_settings_and_signing_key():
    env = read_restate_env({
        "RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT": "0s",
        "RESTATE_WORKER__INVOKER__ABORT_TIMEOUT": "1m",
        "RESTATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE": "/a.pem",
        "RESTATE_BASE_DIR": "/state",
    })
    assert env.base_dir == "/state"
    assert (env.inactivity_timeout_ms, env.abort_timeout_ms) == (0, 60_000)
    assert env.request_identity_key_file == "/a.pem"


def test_malformed_variable_is_named_in_the_error():
    with pytest.raises(ValueError, match="INACTIVITY_TIMEOUT"):
        read_restate_env({"RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT": "soon"})


@pytest.mark.parametrize("value, expected", [("true", True), ("1", True), ("false", False), ("", None)])
def test_disable_eager_state(value, expected):
    env = read_restate_env({"RESTATE_WORKER__INVOKER__DISABLE_EAGER_STATE": value})
    assert env.disable_eager_state is expected


def test_malformed_eager_state_switch_is_refused():
    with pytest.raises(ValueError, match="DISABLE_EAGER_STATE"):
        read_restate_env({"RESTATE_WORKER__INVOKER__DISABLE_EAGER_STATE": "sometimes"})
