"""The server's configuration: one typed object, built by the CLI and passed down."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from perdure.server.partition.retry import RetryPolicy

__all__ = ["ServerConfig", "parse_bind", "parse_size"]


def parse_bind(value: str) -> tuple[str, int]:
    """'HOST:PORT' (or '[v6]:PORT') to (host, port), with a message a person can act on."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not (0 <= int(port) <= 65535):
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
               "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


def parse_size(value: str, *, minimum: int = 1) -> int:
    """A byte count such as '65536', '64KiB', '10 MB' or '1.5MiB' (KB/MB: powers of 1000,
    KiB/MiB: powers of 1024), at least `minimum`."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _SIZE_UNITS:
        raise ValueError(f"expected a size such as 65536, 64KiB or 10MiB, got {value!r}")
    size = int(float(m.group(1)) * _SIZE_UNITS[unit])
    if size < minimum:
        raise ValueError(f"a size must be at least {minimum}, got {value!r}" if minimum != 1
                         else f"a size must be positive, got {value!r}")
    return size


@dataclass(slots=True)
class ServerConfig:
    data_dir: Path = Path("perdure-data")
    ingress_bind: tuple[str, int] = ("0.0.0.0", 8080)
    admin_bind: tuple[str, int] = ("0.0.0.0", 9070)
    # Highest service protocol version offered to deployments (5..7).
    max_protocol_version: int = 7
    inactivity_timeout_ms: int = 60_000
    abort_timeout_ms: int = 600_000
    connect_timeout_s: float = 10.0
    # Largest request body the ingress accepts: Restate 1.7's `ingress.request-size-limit` default.
    max_request_body: int = 32 * 1024 * 1024
    # Largest value a handler may store under one state key. Restate bounds every message from a
    # deployment by `message-size-limit` (32 MiB by default), which in practice bounds state values;
    # we take the same default. A larger value fails the attempt, is not stored, and is retried
    # under the invocation's retry policy, as Restate retries an over-limit message (RT0003).
    max_state_value_size: int = 32 * 1024 * 1024
    # Room for the rest of a SetState frame (key, framing) above `max_state_value_size`, so a value
    # exactly at the limit still fits in one frame; Restate adds such room to its limit too.
    frame_headroom: int = 256 * 1024
    max_frame_length: int = 32 * 1024 * 1024
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    # Ed25519 PKCS#8 PEM key to sign requests to deployments with (protocol.md section 8).
    request_identity_key_file: Path | None = None
    # Free space the ingress keeps for invocations already accepted: below it, new requests get
    # 503 until space is freed (0 turns the check off; ENOSPC is still answered with 503).
    min_free_disk_bytes: int = 64 * 1024 * 1024
    # OTLP/HTTP collector to export traces to (`http://host:4318`); None: no tracing, and
    # opentelemetry is never imported.
    tracing_endpoint: str | None = None
    # Send no state with an attempt's start, whatever the handler asks for: every read is a
    # GetLazyState (Restate's private `worker.invoker.disable-eager-state`).
    disable_eager_state: bool = False

    def frame_limit(self) -> int:
        """The longest frame accepted from a deployment: the general limit, raised when needed so
        that a state value at `max_state_value_size` still fits."""
        return max(self.max_frame_length, self.max_state_value_size + self.frame_headroom)
