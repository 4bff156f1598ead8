"""The localnet's HTTP face: Solana JSON-RPC (single requests and batches) on an ASGI app.

``create_app(chain)`` returns a Starlette app whose lifespan advances a slot every
``chain.slot_ms`` (400 ms by default).
Handlers are synchronous and fast (LiteSVM runs in-process), so they run on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import decentral_chain.localnet.cheatcodes  # noqa: F401  (registers Surfpool's cheatcodes)
import decentral_chain.localnet.methods  # noqa: F401  (registers the handlers)
from decentral_chain.localnet.chain import LocalChain
from decentral_chain.localnet.jsonrpc import dispatch, error_response
from decentral_chain.rpc import INVALID_REQUEST, PARSE_ERROR

MAX_BATCH = 1_000


def create_app(chain: LocalChain, *, tick: bool = True) -> Starlette:
    async def rpc(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return JSONResponse(error_response(None, PARSE_ERROR, "Parse error"))
        if isinstance(body, list):
            if not body or len(body) > MAX_BATCH:
                return JSONResponse(error_response(None, INVALID_REQUEST, "Invalid request"))
            replies = [r for r in (dispatch(chain, item) for item in body) if r is not None]
            return JSONResponse(replies)
        return JSONResponse(dispatch(chain, body))

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(_ticker(chain)) if tick else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    return Starlette(
        routes=[Route("/", rpc, methods=["POST"]), Route("/health", health, methods=["GET"])], lifespan=lifespan
    )


async def _ticker(chain: LocalChain) -> None:
    while True:
        await asyncio.sleep(chain.slot_ms / 1000)
        chain.tick()


class ServerThread:
    """Serve apps on 127.0.0.1 from one background thread and event loop.

    ``apps`` pairs each app with a port (0 picks a free one). Used by tests and benchmarks;
    the ``decentral localnet`` command serves the same apps in the foreground.
    """

    def __init__(self, *apps: tuple[Starlette, int], host: str = "127.0.0.1") -> None:
        import threading

        import uvicorn

        self.servers = [
            uvicorn.Server(
                uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on", ws="websockets-sansio")
            )
            for app, port in apps
        ]
        self.thread = threading.Thread(target=lambda: asyncio.run(self._serve()), name="localnet", daemon=True)

    async def _serve(self) -> None:
        await asyncio.gather(*(server.serve() for server in self.servers))

    def __enter__(self) -> ServerThread:
        import time

        self.thread.start()
        deadline = time.monotonic() + 10
        while not all(server.started for server in self.servers):
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("localnet server did not start")
            time.sleep(0.005)
        return self

    def url(self, index: int = 0, scheme: str = "http") -> str:
        host, port = self.servers[index].servers[0].sockets[0].getsockname()[:2]
        return f"{scheme}://{host}:{port}"

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            server.should_exit = True
        self.thread.join(timeout=10)


def free_port_pair(host: str = "127.0.0.1") -> int:
    """A port P with P and P + 1 both free (RPC and PubSub, as clients expect)."""
    import socket

    for _ in range(100):
        with socket.socket() as a:
            a.bind((host, 0))
            port = a.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket() as b:
                try:
                    b.bind((host, port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free pair of adjacent ports")
