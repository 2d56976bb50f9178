"""A minimal asyncio HTTP/2 client over cleartext with prior knowledge (what Restate uses
for ``http://`` deployments), enough to play the runtime's side of a bidi invocation."""

from __future__ import annotations

import asyncio
from typing import Any

import h2.config
import h2.connection
import h2.events


class H2Stream:
    def __init__(self, conn: H2Client, stream_id: int) -> None:
        self._conn = conn
        self.stream_id = stream_id
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.status: int | None = None
        self.headers: dict[str, str] = {}

    async def send(self, data: bytes, end: bool = False) -> None:
        self._conn._h2.send_data(self.stream_id, data, end_stream=end)
        await self._conn._flush()

    async def end(self) -> None:
        self._conn._h2.end_stream(self.stream_id)
        await self._conn._flush()

    async def response_headers(self, timeout: float = 5) -> int:
        kind, value = await asyncio.wait_for(self.events.get(), timeout)
        assert kind == "headers", (kind, value)
        self.headers = {k.decode(): v.decode() for k, v in value}
        self.status = int(self.headers[":status"])
        return self.status

    async def next(self, timeout: float = 5) -> tuple[str, Any]:
        """("data", bytes) | ("end", None) | ("reset", code) | ("closed", None)."""
        return await asyncio.wait_for(self.events.get(), timeout)

    async def read_all(self, timeout: float = 5) -> bytes:
        body = bytearray()
        while True:
            kind, value = await self.next(timeout)
            if kind == "data":
                body += value
            else:
                return bytes(body)


class H2Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self._streams: dict[int, H2Stream] = {}
        self._pump_task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, host: str, port: int) -> H2Client:
        reader, writer = await asyncio.open_connection(host, port)
        client = cls(reader, writer)
        client._h2.initiate_connection()
        await client._flush()
        client._pump_task = asyncio.create_task(client._pump())
        return client

    async def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data:
            self._writer.write(data)
            await self._writer.drain()

    async def _pump(self) -> None:
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                for event in self._h2.receive_data(data):
                    stream = self._streams.get(getattr(event, "stream_id", 0) or 0)
                    if isinstance(event, h2.events.ResponseReceived) and stream:
                        stream.events.put_nowait(("headers", event.headers))
                    elif isinstance(event, h2.events.DataReceived) and stream:
                        self._h2.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                        stream.events.put_nowait(("data", event.data))
                    elif isinstance(event, h2.events.StreamEnded) and stream:
                        stream.events.put_nowait(("end", None))
                    elif isinstance(event, h2.events.StreamReset) and stream:
                        stream.events.put_nowait(("reset", event.error_code))
                await self._flush()
        finally:
            for stream in self._streams.values():
                stream.events.put_nowait(("closed", None))

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, *, end: bool = False
    ) -> H2Stream:
        stream_id = self._h2.get_next_available_stream_id()
        stream = H2Stream(self, stream_id)
        self._streams[stream_id] = stream
        all_headers = [
            (":method", method),
            (":scheme", "http"),
            (":authority", "localhost"),
            (":path", path),
        ]
        all_headers += list((headers or {}).items())
        self._h2.send_headers(stream_id, all_headers, end_stream=end)
        await self._flush()
        return stream

    async def close(self) -> None:
        self._h2.close_connection()
        try:
            await self._flush()
        except ConnectionError:
            pass
        self._writer.close()
        if self._pump_task is not None:
            self._pump_task.cancel()
            try:
                await self._pump_task
            except (asyncio.CancelledError, ConnectionError):
                pass
