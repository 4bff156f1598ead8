"""A lean HTTP/1.1 client for the gateway's requests to its workers (keep-alive, a pool of
connections per worker, Content-Length and chunked bodies).

On a loopback hop httpx costs ~0.9 ms per request here and this ~0.25 ms: on the path of
every remote job that is most of what the remote hop adds (``bench/gateway.py``). It
speaks only what a worker answers (uvicorn: ``Content-Length``, or ``chunked`` for streams).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEADER = 64 * 1024


class WireError(Exception):
    """The connection failed or the answer is not HTTP/1.1 as a worker speaks it."""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def close(self) -> None:
        self.writer.close()


class WireClient:
    def __init__(self, url: str, *, connect_timeout: float = 2.0, max_idle: int = 64) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"{url}: only http:// worker URLs take the lean client")
        self.host, self.port = parts.hostname, parts.port or 80
        self.base = parts.path.rstrip("/")
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self._idle: list[_Connection] = []

    async def _connect(self) -> _Connection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.reader.at_eof() and not conn.writer.is_closing():
                return conn
            conn.close()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, limit=MAX_HEADER), self.connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            raise WireError(f"cannot connect to {self.host}:{self.port}: {exc or type(exc).__name__}") from exc
        return _Connection(reader, writer)

    def _release(self, conn: _Connection) -> None:
        if len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.close()

    async def _send(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[_Connection, int, dict]:
        conn = await self._connect()
        lines = [f"{method} {self.base}{path} HTTP/1.1", f"host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"content-length: {len(body)}")
        try:
            conn.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            await conn.writer.drain()
            head = await conn.reader.readuntil(b"\r\n\r\n")
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            conn.close()
            raise WireError(f"{method} {path}: the connection failed ({type(exc).__name__})") from exc
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        try:
            status = int(status_line.split(" ", 2)[1])
        except (IndexError, ValueError):
            conn.close()
            raise WireError(f"{method} {path}: not an HTTP answer: {status_line[:80]!r}") from None
        reply_headers = {}
        for line in header_lines:
            if ":" in line:
                name, _, value = line.partition(":")
                reply_headers[name.strip().lower()] = value.strip()
        return conn, status, reply_headers

    async def request(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Reply:
        conn, status, reply_headers = await self._send(method, path, body, headers)
        try:
            data = b"".join([piece async for piece in self._body(conn, reply_headers)])
        except BaseException:
            conn.close()
            raise
        self._reuse(conn, reply_headers)
        return Reply(status, reply_headers, data)

    async def stream(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> AsyncIterator[Reply | bytes]:
        """First a Reply (status and headers, empty body), then the body as it comes."""
        conn, status, reply_headers = await self._send(method, path, body, headers)
        done = False
        try:
            yield Reply(status, reply_headers, b"")
            async for piece in self._body(conn, reply_headers):
                yield piece
            done = True
        finally:
            if done:
                self._reuse(conn, reply_headers)
            else:
                conn.close()

    def _reuse(self, conn: _Connection, headers: dict[str, str]) -> None:
        if headers.get("connection", "").lower() == "close":
            conn.close()
        else:
            self._release(conn)

    async def _body(self, conn: _Connection, headers: dict[str, str]) -> AsyncIterator[bytes]:
        reader = conn.reader
        try:
            if headers.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
                    if size == 0:
                        await reader.readuntil(b"\r\n")
                        return
                    piece = await reader.readexactly(size)
                    await reader.readexactly(2)
                    yield piece
            elif "content-length" in headers:
                yield await reader.readexactly(int(headers["content-length"]))
            else:
                yield await reader.read()
                conn.close()
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            conn.close()
            raise WireError(f"the answer's body broke off ({type(exc).__name__})") from exc

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop().close()
