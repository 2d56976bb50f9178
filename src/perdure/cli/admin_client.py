"""A small synchronous client of the admin API (Restate's shape, served by `perdure server` or
by a Restate server), for the command line.

It uses only the standard library (`urllib`) so that `perdure --help` and a one-shot command
start fast. It owns talking HTTP and turning answers into Python values or `AdminError`s; it
must not print anything (that is `render`'s job).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["AdminClient", "AdminError", "ServerUnreachable", "sql_string"]

DEFAULT_TIMEOUT_S = 30.0


class AdminError(Exception):
    """The server answered with an error status; `message` is its own words."""

    def __init__(self, status: int, message: str, method: str, path: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.method = method
        self.path = path


class ServerUnreachable(Exception):
    """Nothing answered at the admin URL (refused, unknown host, timeout)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


def sql_string(value: str) -> str:
    """`value` as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _error_message(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text or "(no message)"
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"]
    return text


class AdminClient:
    """`AdminClient("http://localhost:9070").get("/deployments")` and friends."""

    def __init__(self, base_url: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None,
                params: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """(status, decoded JSON body or None). Raises AdminError on a status >= 400."""
        # Imported here: urllib.request pulls in http.client, ssl and email (~40 ms), which
        # `--help` never needs.
        import urllib.error
        import urllib.parse
        import urllib.request

        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None
        hdrs = {"accept": "application/json", **(headers or {})}
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["content-type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            raise AdminError(e.code, _error_message(e.read()), method, path) from None
        except urllib.error.URLError as e:
            raise ServerUnreachable(self.base_url, str(e.reason)) from None
        except (TimeoutError, ConnectionError) as e:
            raise ServerUnreachable(self.base_url, str(e) or type(e).__name__) from None
        if not raw.strip():
            return status, None
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        return self.request("GET", path, params=params)[1]

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)[1]

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Rows of a `POST /query` (nulls are absent from each row, as the server sends them)."""
        answer = self.post("/query", {"query": sql})
        if not isinstance(answer, dict) or not isinstance(answer.get("rows"), list):
            raise AdminError(200, f"unexpected answer to /query: {str(answer)[:200]}", "POST", "/query")
        return answer["rows"]
