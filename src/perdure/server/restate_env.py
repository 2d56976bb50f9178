"""Restate's configuration environment variables, read for the settings perdure shares with
Restate, so that one environment configures either server (Restate's SDK test suite, for
one, configures its runtime container this way: an always-suspending invoker, a retry
policy that kills after one attempt, a request-signing key).

Restate names a setting ``RESTATE_<KEY>`` with nested tables joined by ``__`` and durations in
humantime (``0s``, ``1ms``, ``1m 30s``). Only the variables below are read; the command line
wins over them. This module parses; it never touches the server's state.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from perdure.server.partition.retry import OnMaxAttempts, RetryPolicy

__all__ = ["RestateEnv", "parse_duration_ms", "read_restate_env"]

BASE_DIR = "RESTATE_BASE_DIR"
INGRESS_BIND = "RESTATE_INGRESS__BIND_ADDRESS"
ADMIN_BIND = "RESTATE_ADMIN__BIND_ADDRESS"
INACTIVITY_TIMEOUT = "RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT"
ABORT_TIMEOUT = "RESTATE_WORKER__INVOKER__ABORT_TIMEOUT"
# Send no state with the start of an attempt: handlers read it with GetLazyState (the SDK test
# suite's `lazyState` configuration).
DISABLE_EAGER_STATE = "RESTATE_WORKER__INVOKER__DISABLE_EAGER_STATE"
# Restate reads the key file at the top level (since 1.1) and, earlier, under the invoker.
IDENTITY_KEY_FILES = ("RESTATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE",
                      "RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE")
RETRY = "RESTATE_DEFAULT_RETRY_POLICY__"
# The invoker's retry policy of Restate < 1.5 (`type` none | fixed-delay | exponential).
LEGACY_RETRY = "RESTATE_WORKER__INVOKER__RETRY_POLICY__"

_UNITS_MS = {
    "ns": 1e-6, "nsec": 1e-6, "us": 1e-3, "usec": 1e-3, "ms": 1.0, "msec": 1.0, "millis": 1.0,
    "s": 1e3, "sec": 1e3, "secs": 1e3, "second": 1e3, "seconds": 1e3,
    "m": 60e3, "min": 60e3, "mins": 60e3, "minute": 60e3, "minutes": 60e3,
    "h": 3600e3, "hr": 3600e3, "hrs": 3600e3, "hour": 3600e3, "hours": 3600e3,
    "d": 86400e3, "day": 86400e3, "days": 86400e3,
}
_ISO = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?", re.I)


def parse_duration_ms(text: str) -> int:
    """A humantime (``500ms``, ``1m 30s``) or ISO 8601 (``PT1S``) duration, in milliseconds."""
    value = text.strip()
    iso = _ISO.fullmatch(value)
    if iso and value.upper() != "P":
        d, h, m, s = (float(g) if g else 0.0 for g in iso.groups())
        return int(((d * 24 + h) * 60 + m) * 60_000 + s * 1000)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]+)", value)
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]+)", "", value).strip():
        raise ValueError(f"expected a duration such as 500ms, 10s or 1m 30s, got {text!r}")
    total = 0.0
    for number, unit in parts:
        if unit.lower() not in _UNITS_MS:
            raise ValueError(f"unknown unit {unit!r} in duration {text!r}")
        total += float(number) * _UNITS_MS[unit.lower()]
    return int(total)


@dataclass(slots=True, frozen=True)
class RestateEnv:
    """What the environment sets; None: not set."""

    base_dir: str | None = None
    ingress_bind: str | None = None
    admin_bind: str | None = None
    inactivity_timeout_ms: int | None = None
    abort_timeout_ms: int | None = None
    request_identity_key_file: str | None = None
    retry_policy: RetryPolicy | None = None
    disable_eager_state: bool | None = None


def _retry_policy(env: Mapping[str, str], base: RetryPolicy) -> RetryPolicy | None:
    def get(prefix: str, name: str) -> str | None:
        value = env.get(prefix + name)
        return value.strip() if value and value.strip() else None

    policy: RetryPolicy | None = None
    kind = (get(LEGACY_RETRY, "TYPE") or "").lower().replace("_", "-")
    if kind == "none":
        policy = base.overridden(max_attempts=1, on_max_attempts=OnMaxAttempts.KILL)
    elif kind in ("fixed-delay", "exponential"):
        interval = get(LEGACY_RETRY, "INTERVAL") or get(LEGACY_RETRY, "INITIAL_INTERVAL")
        attempts = get(LEGACY_RETRY, "MAX_ATTEMPTS")
        policy = base.overridden(
            initial_interval_ms=parse_duration_ms(interval) if interval else None,
            factor=1.0 if kind == "fixed-delay" else float(get(LEGACY_RETRY, "FACTOR") or 2.0),
            max_interval_ms=(parse_duration_ms(interval) if kind == "fixed-delay" and interval
                             else _opt_ms(get(LEGACY_RETRY, "MAX_INTERVAL"))),
            # the legacy count is of retries, after the first attempt
            max_attempts=int(attempts) + 1 if attempts else None,
            on_max_attempts=OnMaxAttempts.KILL,
        )
    fields = {name: get(RETRY, name) for name in
              ("INITIAL_INTERVAL", "EXPONENTIATION_FACTOR", "MAX_INTERVAL", "MAX_ATTEMPTS",
               "ON_MAX_ATTEMPTS")}
    if not any(fields.values()):
        return policy
    attempts = fields["MAX_ATTEMPTS"]
    unlimited = attempts is not None and attempts.lower() in ("unlimited", "0")
    policy = (policy or base).overridden(
        initial_interval_ms=_opt_ms(fields["INITIAL_INTERVAL"]),
        factor=float(fields["EXPONENTIATION_FACTOR"]) if fields["EXPONENTIATION_FACTOR"] else None,
        max_interval_ms=_opt_ms(fields["MAX_INTERVAL"]),
        max_attempts=int(attempts) if attempts and not unlimited else None,
        on_max_attempts=fields["ON_MAX_ATTEMPTS"],
    )
    if unlimited:
        policy = RetryPolicy(policy.initial_interval_ms, policy.factor, policy.max_interval_ms,
                             None, policy.on_max_attempts)
    if policy.max_attempts is not None and policy.max_attempts < 1:
        raise ValueError(f"{RETRY}MAX_ATTEMPTS must be at least 1, got {attempts!r}")
    return policy


def _opt_ms(text: str | None) -> int | None:
    return parse_duration_ms(text) if text else None


def read_restate_env(env: Mapping[str, str], base_retry: RetryPolicy | None = None) -> RestateEnv:
    """The settings ``env`` gives; raises ValueError naming the variable that is malformed."""
    def duration(name: str) -> int | None:
        value = env.get(name)
        if not value:
            return None
        try:
            return parse_duration_ms(value)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None

    try:
        retry = _retry_policy(env, base_retry or RetryPolicy())
    except ValueError as e:
        raise ValueError(f"retry policy from the environment: {e}") from None
    key_file = next((env[name] for name in IDENTITY_KEY_FILES if env.get(name)), None)
    eager = (env.get(DISABLE_EAGER_STATE) or "").strip().lower()
    if eager not in ("", "true", "false", "1", "0"):
        raise ValueError(f"{DISABLE_EAGER_STATE}: expected true or false, got {env[DISABLE_EAGER_STATE]!r}")
    return RestateEnv(
        base_dir=env.get(BASE_DIR) or None,
        ingress_bind=env.get(INGRESS_BIND) or None,
        admin_bind=env.get(ADMIN_BIND) or None,
        inactivity_timeout_ms=duration(INACTIVITY_TIMEOUT),
        abort_timeout_ms=duration(ABORT_TIMEOUT),
        request_identity_key_file=key_file,
        retry_policy=retry,
        disable_eager_state=eager in ("true", "1") if eager else None,
    )
