"""Solana PubSub over WebSocket (served on the RPC port + 1, as validators do).

Subscriptions: account, program, signature, logs, slot, root, slotsUpdates, block, vote, and
their unsubscribes. ``slotsUpdates`` tells each slot's life as a one-node cluster has it
(createdBank, frozen with its transaction counts, optimisticConfirmation one slot later,
root); ``block`` sends each block, shaped as ``getBlock``, when it reaches the subscription's
commitment (confirmed or finalized; ``mentionsAccountOrProgram``: only blocks with a
transaction mentioning it); ``vote`` is accepted and stays silent — there are no votes here.
The chain calls the :class:`Hub` from whatever thread processed a transaction or advanced
a slot; the hub hops onto its event loop and queues notifications per session, in the
validator's shapes (``{"method": "<kind>Notification", "params": {"result", "subscription"}}``).
A signature subscription is notified once its transaction reaches the subscription's
commitment (default finalized, as on a validator): processed at once, confirmed when its
slot closes, finalized ``finality_slots`` later. Account, program and logs notifications go
out as transactions are processed; ``root`` follows the finalized slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from decentral_chain.errors import RpcError
from decentral_chain.localnet.chain import LocalChain, TxRecord
from decentral_chain.localnet.encoding import account_json, matches_filters, tx_error_json
from decentral_chain.localnet.jsonrpc import error_response, parse_pubkey, parse_signature, read_commitment
from decentral_chain.rpc import INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR

KINDS = ("account", "program", "signature", "logs", "slot", "root", "slotsUpdates", "block", "vote")


@dataclass
class Subscription:
    id: int
    kind: str
    session: Session
    target: Any = None  # Pubkey / Signature / logs filter
    config: dict = field(default_factory=dict)


@dataclass
class Session:
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    subscriptions: set[int] = field(default_factory=set)


class Hub:
    def __init__(self, chain: LocalChain) -> None:
        self.chain = chain
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ids = itertools.count(1)
        self.subs: dict[int, Subscription] = {}
        chain.tx_listeners.append(self._from_any_thread(self._on_transaction))
        chain.slot_listeners.append(self._from_any_thread(self._on_slot))

    def _from_any_thread(self, fn):
        def call(arg: Any) -> None:
            if self.loop is not None and not self.loop.is_closed():
                self.loop.call_soon_threadsafe(fn, arg)

        return call

    # ------------------------------------------------------------ subscribe

    def subscribe(self, session: Session, kind: str, params: list) -> int:
        cfg = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
        if kind in ("account", "program"):
            target = parse_pubkey(params[0] if params else None)
        elif kind == "signature":
            target = parse_signature(params[0] if params else None)
        elif kind == "logs":
            target = params[0] if params else None
            if target not in ("all", "allWithVotes") and not (
                isinstance(target, dict) and isinstance(target.get("mentions"), list) and len(target["mentions"]) == 1
            ):
                raise ValueError('expected "all", "allWithVotes" or {"mentions": [<one pubkey>]}')
            if isinstance(target, dict):
                target = parse_pubkey(target["mentions"][0])
        elif kind == "block":
            target = params[0] if params else None
            if target != "all" and not (isinstance(target, dict) and "mentionsAccountOrProgram" in target):
                raise ValueError('expected "all" or {"mentionsAccountOrProgram": <pubkey>}')
            if isinstance(target, dict):
                target = parse_pubkey(target["mentionsAccountOrProgram"])
            cfg = dict(cfg)
            cfg["commitment"] = read_commitment(cfg, minimum="confirmed")
        else:
            target = None
        sub = Subscription(next(self.ids), kind, session, target, cfg)
        self.subs[sub.id] = sub
        session.subscriptions.add(sub.id)
        if kind == "signature":
            sub.config["commitment"] = read_commitment(cfg)
            record = self.chain.history.get(target)
            if record is not None and self.chain.reached(record.slot, sub.config["commitment"]):
                self.loop.call_soon(self._signature_done, sub, record)  # already there: at once, as validators do
        return sub.id

    def unsubscribe(self, session: Session, kind: str, sub_id: Any) -> bool:
        sub = self.subs.get(sub_id) if isinstance(sub_id, int) else None
        if sub is None or sub.session is not session or sub.kind != kind:
            raise RpcError(INVALID_PARAMS, "Invalid subscription id.")
        self._drop(sub)
        return True

    def close(self, session: Session) -> None:
        for sub_id in list(session.subscriptions):
            self._drop(self.subs[sub_id])

    def _drop(self, sub: Subscription) -> None:
        self.subs.pop(sub.id, None)
        sub.session.subscriptions.discard(sub.id)

    # -------------------------------------------------------------- notify

    def _notify(self, sub: Subscription, result: Any) -> None:
        sub.session.queue.put_nowait(
            {
                "jsonrpc": "2.0",
                "method": f"{sub.kind}Notification",
                "params": {"result": result, "subscription": sub.id},
            }
        )

    def _context(self, slot: int, value: Any) -> dict:
        return {"context": {"slot": slot}, "value": value}

    def _signature_done(self, sub: Subscription, record: TxRecord) -> None:
        if sub.id in self.subs:
            self._notify(sub, self._context(record.slot, {"err": tx_error_json(record.err)}))
            self._drop(sub)  # signature subscriptions end with their notification

    def _on_transaction(self, record: TxRecord) -> None:
        msg = record.transaction.message
        keys = list(msg.account_keys)
        writable = [k for i, k in enumerate(keys) if _is_writable(msg, i)]
        for sub in list(self.subs.values()):
            if sub.kind == "signature" and sub.target == record.signature:
                if self.chain.reached(record.slot, sub.config["commitment"]):
                    self._signature_done(sub, record)
            elif sub.kind == "logs" and (sub.target in ("all", "allWithVotes") or sub.target in keys):
                self._notify(
                    sub,
                    self._context(
                        record.slot,
                        {"signature": str(record.signature), "err": tx_error_json(record.err), "logs": record.logs},
                    ),
                )
            elif sub.kind == "account" and sub.target in writable:
                acc = self.chain.get_account(sub.target)
                value = (
                    account_json(acc, sub.config.get("encoding") or "base58", None, self.chain.mint_decimals)
                    if acc
                    else None
                )
                self._notify(sub, self._context(record.slot, value))
            elif sub.kind == "program":
                for key in writable:
                    acc = self.chain.get_account(key)
                    if acc is None or acc.owner != sub.target:
                        continue
                    if not matches_filters(bytes(acc.data), sub.config.get("filters") or []):
                        continue
                    value = {
                        "pubkey": str(key),
                        "account": account_json(
                            acc, sub.config.get("encoding") or "base64", None, self.chain.mint_decimals
                        ),
                    }
                    self._notify(sub, self._context(record.slot, value))

    def _on_slot(self, slot: int) -> None:
        root = self.chain.slot_at("finalized")
        now_ms = int(time.time() * 1000)
        for sub in list(self.subs.values()):
            if sub.kind == "slotsUpdates":
                for update in self._slot_updates(slot, root, now_ms):
                    self._notify(sub, update)
            elif sub.kind == "block":
                done = self.chain.slot_at(sub.config["commitment"])
                for block_slot in range(sub.config.get("next", done), done + 1):
                    self._block(sub, block_slot)
                sub.config["next"] = done + 1
            elif sub.kind == "slot":
                self._notify(sub, {"parent": max(slot - 1, 0), "root": root, "slot": slot})
            elif sub.kind == "root":
                self._notify(sub, root)
            elif sub.kind == "signature":
                record = self.chain.history.get(sub.target)
                if record is not None and self.chain.reached(record.slot, sub.config["commitment"]):
                    self._signature_done(sub, record)

    def _slot_updates(self, slot: int, root: int, now_ms: int) -> list[dict]:
        closed = self.chain.blocks.get(slot - 1)
        updates = [{"type": "createdBank", "slot": slot, "parent": slot - 1, "timestamp": now_ms}]
        if closed is not None:
            records = [self.chain.history[s] for s in closed.signatures if s in self.chain.history]
            failed = sum(r.err is not None for r in records)
            stats = {
                "numTransactionEntries": len(records),
                "numSuccessfulTransactions": len(records) - failed,
                "numFailedTransactions": failed,
                "maxTransactionsPerEntry": 1 if records else 0,
            }
            updates.append({"type": "frozen", "slot": slot - 1, "timestamp": now_ms, "stats": stats})
            updates.append({"type": "optimisticConfirmation", "slot": slot - 1, "timestamp": now_ms})
        updates.append({"type": "root", "slot": root, "timestamp": now_ms})
        return updates

    def _block(self, sub: Subscription, slot: int) -> None:
        from decentral_chain.localnet.methods import get_block

        block = self.chain.blocks.get(slot)
        if block is None:  # a slot time travel skipped
            return
        if sub.target != "all":
            records = [self.chain.history[s] for s in block.signatures]
            if not any(sub.target in r.transaction.message.account_keys for r in records):
                return
        cfg = {k: v for k, v in sub.config.items() if k != "next"}
        try:
            value = get_block(self.chain, [slot, cfg])
        except (ValueError, RpcError) as exc:  # an encoding it cannot give: said once, then quiet
            self._notify(sub, self._context(slot, {"slot": slot, "err": str(exc), "block": None}))
            return
        self._notify(sub, self._context(slot, {"slot": slot, "err": None, "block": value}))


def _is_writable(msg: Any, index: int) -> bool:
    header = msg.header
    n = len(msg.account_keys)
    signed = header.num_required_signatures
    if index < signed:
        return index < signed - header.num_readonly_signed_accounts
    return index < n - header.num_readonly_unsigned_accounts


def create_pubsub_app(chain: LocalChain) -> Starlette:
    hub = Hub(chain)

    async def endpoint(websocket: WebSocket) -> None:
        hub.loop = asyncio.get_running_loop()
        await websocket.accept()
        session = Session()
        sender = asyncio.create_task(_send_loop(websocket, session))
        try:
            while True:
                text = await websocket.receive_text()
                await session.queue.put(_handle(hub, session, text))
        except WebSocketDisconnect:
            pass
        finally:
            hub.close(session)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    return Starlette(routes=[WebSocketRoute("/", endpoint)])


async def _send_loop(websocket: WebSocket, session: Session) -> None:
    while True:
        message = await session.queue.get()
        await websocket.send_text(json.dumps(message))


def _handle(hub: Hub, session: Session, text: str) -> dict:
    try:
        request = json.loads(text)
    except json.JSONDecodeError:
        return error_response(None, PARSE_ERROR, "Parse error")
    if not isinstance(request, dict) or not isinstance(request.get("method"), str):
        return error_response(None, INVALID_REQUEST, "Invalid request")
    rid, name = request.get("id"), request["method"]
    params = request.get("params") or []
    for kind in KINDS:
        try:
            if name == f"{kind}Subscribe":
                return {"jsonrpc": "2.0", "result": hub.subscribe(session, kind, params), "id": rid}
            if name == f"{kind}Unsubscribe":
                sub_id = params[0] if params else None
                return {"jsonrpc": "2.0", "result": hub.unsubscribe(session, kind, sub_id), "id": rid}
        except RpcError as exc:
            return error_response(rid, exc.code, exc.message, exc.data)
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            return error_response(rid, INVALID_PARAMS, f"Invalid params: {exc}")
    return error_response(rid, METHOD_NOT_FOUND, "Method not found", f"{name} is not served by this localnet")
