"""The ingress HTTP API (default port 8080)."""
