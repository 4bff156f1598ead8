"""The webhooks' routes and where their events come from (delivery: :mod:`.webhooks`).

* ``POST /v1/webhooks`` ``{"url", "events": [...], "credits_low_threshold"?}`` → 201 with the
  webhook and its ``secret`` (shown this once); ``GET /v1/webhooks`` lists the key's webhooks,
  ``GET /v1/webhooks/{id}`` adds its recent deliveries, ``DELETE /v1/webhooks/{id}``
  removes it. A key sees and removes only its own.
* Job events come from the journal: a job entering ``settled`` / ``refunded`` gives
  ``job.settled`` / ``job.refunded`` with its receipt; ``refunding`` or ``rejected`` (the job
  could not be completed) gives ``job.failed`` with the reason.
* Account events come from the chain: after each settlement, and every
  ``webhook_poll_interval`` for the wallets watched, the wallet's Credits account is read —
  ``total_deposited`` grown is ``credits.deposited``; free credits below a webhook's
  threshold is ``credits.low``, once per crossing (armed again when they rise above it).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from solders.pubkey import Pubkey
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from decentral_chain.errors import DecentralError
from decentral_chain.gateway import errors as gw
from decentral_chain.gateway.lifecycle import chain_errors
from decentral_chain.gateway.routes import authenticate, job_receipt
from decentral_chain.gateway.webhooks import (
    EVENTS,
    MAX_WEBHOOKS_PER_KEY,
    DestinationRefused,
    key_digest,
    resolve_public,
)

if TYPE_CHECKING:
    from decentral_chain.gateway.app import State

logger = logging.getLogger(__name__)
USDC = 1_000_000
_JOB_EVENTS = {
    "settled": "job.settled",
    "refunded": "job.refunded",
    "refunding": "job.failed",
    "rejected": "job.failed",
}


class WebhookNotFound(gw.GatewayError):
    status, type, code = 404, "invalid_request_error", "webhook_not_found"


def _state(request: Request) -> State:
    return request.app.state.gateway


# ------------------------------------------------------------------------ routes


async def create_webhook(request: Request) -> Response:
    state = _state(request)
    key, wallet = authenticate(request, state)
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise gw.InvalidRequest("Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise gw.InvalidRequest("The body must be a JSON object")
    events = body.get("events")
    if (
        not isinstance(events, list)
        or not events
        or any(e not in EVENTS for e in events)
        or len(set(events)) != len(events)
    ):
        raise gw.InvalidRequest(
            f"events: a non-empty list of distinct events among {', '.join(EVENTS)}", param="events"
        )
    threshold = body.get("credits_low_threshold")
    if "credits.low" in events:
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 0:
            raise gw.InvalidRequest(
                "credits_low_threshold: credits (an integer >= 0) are required with credits.low",
                param="credits_low_threshold",
            )
    elif threshold is not None:
        raise gw.InvalidRequest("credits_low_threshold is only used with credits.low", param="credits_low_threshold")
    key_hash = key_digest(key)
    if len(state.webhooks.of_key(key_hash)) >= MAX_WEBHOOKS_PER_KEY:
        raise gw.InvalidRequest(f"At most {MAX_WEBHOOKS_PER_KEY} webhooks per API key", param="url")
    url = body.get("url")
    try:
        await asyncio.to_thread(resolve_public, url, state.settings.webhooks_allow_private)
    except DestinationRefused as exc:
        raise gw.InvalidRequest(f"url: {exc}", param="url") from None
    with chain_errors():
        credits = await state.escrow.get_credits(wallet)
    webhook = state.webhooks.add(
        key_hash, str(wallet), url, events, threshold, credits.total_deposited if credits else 0
    )
    return JSONResponse(webhook.public() | {"secret": webhook.secret}, status_code=201)


async def list_webhooks(request: Request) -> Response:
    state = _state(request)
    key, _ = authenticate(request, state)
    return JSONResponse({"object": "list", "data": [w.public() for w in state.webhooks.of_key(key_digest(key))]})


async def get_webhook(request: Request) -> Response:
    state = _state(request)
    key, _ = authenticate(request, state)
    webhook = state.webhooks.get(request.path_params["webhook_id"])
    if webhook is None or webhook.key_hash != key_digest(key):
        raise WebhookNotFound(f"No webhook {request.path_params['webhook_id']}", param="webhook_id")
    return JSONResponse(webhook.public() | {"deliveries": state.webhooks.events(webhook.webhook_id)[-50:]})


async def delete_webhook(request: Request) -> Response:
    state = _state(request)
    key, _ = authenticate(request, state)
    webhook_id = request.path_params["webhook_id"]
    if not state.webhooks.delete(key_digest(key), webhook_id):
        raise WebhookNotFound(f"No webhook {webhook_id}", param="webhook_id")
    return JSONResponse({"id": webhook_id, "object": "webhook", "deleted": True})


# ------------------------------------------------------------------------ events


def emit(state: State, wallet: str, event: str, data: dict[str, Any]) -> int:
    """Queue ``event`` for every webhook of ``wallet`` that wants it; returns how many."""
    hooks = state.webhooks.of_wallet(wallet, event)
    for hook in hooks:
        state.webhooks.enqueue(hook, event, data)
    if hooks:
        state.deliverer.wake.set()
    return len(hooks)


def on_job(state: State, job_id: str, new_state: str) -> None:
    """The journal's listener: a job entered ``new_state``."""
    row = state.journal.get(job_id)
    if row is None:
        return
    event = _JOB_EVENTS[new_state]
    if event == "job.failed":
        data: dict[str, Any] = {"job_id": job_id, "reason": row["error"], "locked": row["amount"]}
    else:
        data = {
            "job_id": job_id,
            "receipt": job_receipt(state, row),
            "usage": {"prompt_tokens": row["prompt_tokens"], "completion_tokens": row["completion_tokens"]},
        }
    emit(state, row["client"], event, data)
    if new_state in ("settled", "refunded") and state.webhooks.of_wallet(row["client"], "credits.low"):
        state.spawn(check_credits(state, row["client"]))


async def check_credits(state: State, wallet: str) -> None:
    """Read the wallet's Credits: deposits since last seen, and low-credit crossings."""
    hooks = [h for h in state.webhooks.of_wallet(wallet) if {"credits.low", "credits.deposited"} & set(h.events)]
    if not hooks:
        return
    try:
        credits = await state.escrow.get_credits(Pubkey.from_string(wallet))
    except DecentralError as exc:
        logger.warning("credits of %s not read for webhooks: %s", wallet, exc)
        return
    if credits is None:
        return
    for hook in hooks:
        if "credits.deposited" in hook.events:
            seen = state.webhooks.deposited_seen(hook.webhook_id) or 0
            if credits.total_deposited > seen:
                state.webhooks.set_deposited(hook.webhook_id, credits.total_deposited)
                state.webhooks.enqueue(
                    hook,
                    "credits.deposited",
                    {
                        "wallet": wallet,
                        "amount": credits.total_deposited - seen,
                        "total_deposited": credits.total_deposited,
                        "credits_remaining": credits.free,
                    },
                )
                state.deliverer.wake.set()
        if "credits.low" in hook.events and hook.threshold is not None:
            low = credits.free < hook.threshold
            if low and not state.webhooks.low_flag(hook.webhook_id):
                state.webhooks.set_low(hook.webhook_id, True)
                state.webhooks.enqueue(
                    hook,
                    "credits.low",
                    {
                        "wallet": wallet,
                        "credits_remaining": credits.free,
                        "usdc_value": f"{credits.free / USDC:.6f}",
                        "threshold": hook.threshold,
                    },
                )
                state.deliverer.wake.set()
            elif not low and state.webhooks.low_flag(hook.webhook_id):
                state.webhooks.set_low(hook.webhook_id, False)


async def watch_credits(state: State) -> None:
    """Every ``webhook_poll_interval``: the watched wallets' deposits and low credits."""
    while True:
        try:
            for wallet in state.webhooks.watched_wallets():
                await check_credits(state, wallet)
        except Exception:  # keep watching: the next round reads again
            logger.exception("credits watch round failed")
        await asyncio.sleep(state.settings.webhook_poll_interval)
