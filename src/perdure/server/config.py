"""The server's configuration: one typed object, built by the CLI and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from perdure.server.partition.retry import RetryPolicy

__all__ = ["ServerConfig", "parse_bind"]


def parse_bind(value: str) -> tuple[str, int]:
    """'HOST:PORT' (or '[v6]:PORT') to (host, port), with a message a person can act on."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not (0 <= int(port) <= 65535):
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


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
    # Largest request body the ingress accepts (Restate's default is also in the MiB range).
    max_request_body: int = 10 * 1024 * 1024
    max_frame_length: int = 32 * 1024 * 1024
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    # Ed25519 PKCS#8 PEM key to sign requests to deployments with (protocol.md section 8).
    request_identity_key_file: Path | None = None
    # OTLP/HTTP collector to export traces to (`http://host:4318`); None: no tracing, and
    # opentelemetry is never imported.
    tracing_endpoint: str | None = None
