"""The admin HTTP API (default port 9070)."""
