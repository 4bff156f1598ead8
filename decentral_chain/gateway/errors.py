"""Gateway errors, each mapped once to OpenAI's envelope {"error": {message, type, param, code}}."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from decentral_chain.errors import DecentralError


class GatewayError(DecentralError):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.details = details
        self.headers = headers or {}


class InvalidRequest(GatewayError):
    status, type, code = 400, "invalid_request_error", "invalid_request"


class Unauthorized(GatewayError):
    status, type, code = 401, "invalid_request_error", "invalid_api_key"


class InsufficientCredits(GatewayError):
    status, type, code = 402, "insufficient_quota", "insufficient_credits"


class ModelNotFound(GatewayError):
    status, type, code = 404, "invalid_request_error", "model_not_found"


class JobNotFound(GatewayError):
    status, type, code = 404, "invalid_request_error", "job_not_found"


class TaskNotFound(GatewayError):
    status, type, code = 404, "invalid_request_error", "task_not_found"


class IdempotencyKeyInUse(GatewayError):
    status, type, code = 409, "invalid_request_error", "idempotency_key_in_use"


class WorkerFailed(GatewayError):
    status, type, code = 502, "server_error", "worker_failed"


class NoWorkerAvailable(GatewayError):
    status, type, code = 503, "server_error", "no_worker_free"


class EscrowPaused(GatewayError):
    status, type, code = 503, "server_error", "escrow_paused"


class ChainUnavailable(GatewayError):
    status, type, code = 503, "server_error", "chain_unavailable"


class JobTimedOut(GatewayError):
    status, type, code = 504, "server_error", "job_timed_out"


def envelope(exc: GatewayError) -> dict[str, Any]:
    error: dict[str, Any] = {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}
    if exc.details:
        error["details"] = exc.details
    return {"error": error}


async def handle(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    return JSONResponse(envelope(exc), status_code=exc.status, headers=exc.headers)
