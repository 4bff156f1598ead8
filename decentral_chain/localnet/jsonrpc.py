"""The localnet's JSON-RPC framing: the method registry, one dispatch, parameter parsing.

Every handler takes the chain and the request's ``params`` list and returns the ``result``
value or raises :class:`~decentral_chain.errors.RpcError`; :func:`dispatch` is the one place
where a request becomes a response envelope (including -32601 for unknown methods, -32602
for bad params). The error codes are :mod:`decentral_chain.rpc`'s, shared with the clients.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from solders.pubkey import Pubkey
from solders.signature import Signature

from decentral_chain.errors import RpcError
from decentral_chain.localnet.chain import COMMITMENTS, LocalChain
from decentral_chain.rpc import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND

logger = logging.getLogger(__name__)

SOLANA_CORE_VERSION = "2.1.21"
FEATURE_SET = 1_725_507_508

Handler = Callable[[LocalChain, list], Any]
METHODS: dict[str, Handler] = {}


def method(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        METHODS[name] = fn
        return fn

    return register


def dispatch(chain: LocalChain, request: Any) -> dict | None:
    """One JSON-RPC request object → its response (None for a notification)."""
    if not isinstance(request, dict) or request.get("jsonrpc") != "2.0" or not isinstance(request.get("method"), str):
        rid = request.get("id") if isinstance(request, dict) else None
        return error_response(rid, INVALID_REQUEST, "Invalid request")
    rid = request.get("id")
    params = request.get("params", [])
    if isinstance(params, dict):
        params = [params]
    if not isinstance(params, list):
        return error_response(rid, INVALID_PARAMS, "Invalid params: expected an array")
    handler = METHODS.get(request["method"])
    if handler is None:
        return error_response(
            rid, METHOD_NOT_FOUND, "Method not found", f"{request['method']} is not served by this localnet"
        )
    try:
        result = handler(chain, params)
    except RpcError as exc:
        return error_response(rid, exc.code, exc.message, exc.data)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        return error_response(rid, INVALID_PARAMS, f"Invalid params: {exc}")
    except Exception as exc:  # a bug of ours: answer it, keep serving, never a bare HTTP 500
        logger.exception("internal error in %s", request["method"])
        return error_response(rid, INTERNAL_ERROR, f"Internal error: {type(exc).__name__}: {exc}")
    return {"jsonrpc": "2.0", "result": result, "id": rid}


def error_response(rid: Any, code: int, message: str, data: Any = None) -> dict:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "error": err, "id": rid}


# ----------------------------------------------------------------- param helpers


def param(params: list, i: int, default: Any = None) -> Any:
    return params[i] if len(params) > i and params[i] is not None else default


def config(params: list, i: int) -> dict:
    cfg = param(params, i, {})
    if not isinstance(cfg, dict):
        raise ValueError("configuration must be an object")
    return cfg


def read_commitment(cfg: Any, *, minimum: str = "processed", default: str = "finalized") -> str:
    """The request's commitment (Agave's default: finalized); below ``minimum`` is an error."""
    value = cfg.get("commitment") if isinstance(cfg, dict) else None
    value = (
        {
            "recent": "processed",
            "single": "confirmed",
            "singleGossip": "confirmed",
            "root": "finalized",
            "max": "finalized",
        }.get(value, value)
        if value is not None
        else default
    )
    if value not in COMMITMENTS:
        raise ValueError(f"unknown commitment {value!r}")
    if COMMITMENTS.index(value) < COMMITMENTS.index(minimum):
        raise RpcError(INVALID_PARAMS, f"Method does not support commitment below `{minimum}`")
    return value


def parse_pubkey(value: Any) -> Pubkey:
    if not isinstance(value, str):
        raise ValueError("expected a base-58 public key string")
    try:
        return Pubkey.from_string(value)
    except Exception as exc:  # solders raises its own ValueError subclasses
        raise ValueError(f"invalid public key {value!r}") from exc


def parse_signature(value: Any) -> Signature:
    if not isinstance(value, str):
        raise ValueError("expected a base-58 signature string")
    try:
        return Signature.from_string(value)
    except Exception as exc:
        raise ValueError(f"invalid signature {value!r}") from exc


def context(chain: LocalChain, value: Any) -> dict:
    return {"context": {"slot": chain.slot, "apiVersion": SOLANA_CORE_VERSION}, "value": value}
