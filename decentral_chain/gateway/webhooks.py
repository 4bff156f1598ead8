"""Webhooks: job and account events delivered to the URLs an API key registers.

Events (``type``): ``job.settled`` and ``job.refunded`` (with the job's receipt),
``job.failed`` (the job could not be completed: why; a refund follows), ``credits.low`` (the
wallet's free credits fell below the webhook's threshold: once per crossing) and
``credits.deposited`` (a deposit landed: how much).

Delivery is at least once, from an **outbox** kept in the journal's SQLite file: an event is
written there before anything is sent, so a crash or a receiver that is down loses nothing.
Each event has a unique id and is sent as the Standard Webhooks specification says::

    POST <url>
    webhook-id: msg_<hex>                 (the same on every retry: receivers deduplicate)
    webhook-timestamp: <unix seconds of this attempt>
    webhook-signature: v1,<base64 HMAC-SHA256 over "<id>.<timestamp>.<body>">
    content-type: application/json

    {"type": "job.settled", "timestamp": "<ISO 8601>", "data": {...}}

keyed with the webhook's secret (``whsec_<base64 of 32 random bytes>``, shown once, at
creation). A 2xx answer delivers it; anything else (an error, a timeout, a redirect) is
retried with exponential backoff (``retry_base`` × 2^attempt, capped at ``retry_cap``) up to
``max_attempts``, then the event is marked failed.

No SSRF: a URL must be http(s) and every address its host resolves to must be public — not
loopback, private, link-local (the cloud metadata address included), multicast, reserved or
unspecified — checked at creation (a 400) and again at each delivery (the event is then
refused, not sent); an http delivery connects to the very address it checked. The operator
allows private addresses with ``decentral gateway --webhooks-allow-private`` or
``DECENTRAL_WEBHOOKS_ALLOW_PRIVATE=1`` (the localnet demo and the tests do).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from decentral_chain.gateway.journal import open_db

logger = logging.getLogger(__name__)

EVENTS = ("job.settled", "job.refunded", "job.failed", "credits.low", "credits.deposited")
MAX_WEBHOOKS_PER_KEY = 10
MAX_URL_LENGTH = 2048
METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


class DestinationRefused(Exception):
    """A webhook URL this gateway will not send to (the reason is the message)."""


def key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks' ``webhook-signature`` value for one attempt."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def _refused_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for what, flag in (
        ("a loopback", ip.is_loopback),
        ("a link-local", ip.is_link_local),
        ("a private", ip.is_private),
        ("a multicast", ip.is_multicast),
        ("a reserved", ip.is_reserved),
        ("an unspecified", ip.is_unspecified),
    ):
        if flag:
            return f"{what} address"
    return None if ip.is_global else "a non-public address"


def parse_url(url: Any) -> tuple[str, str, int]:
    """(scheme, host, port) of an acceptable webhook URL, or DestinationRefused."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise DestinationRefused(f"url must be a string of 1 to {MAX_URL_LENGTH} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DestinationRefused("url must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise DestinationRefused("url must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise DestinationRefused("url has an invalid port") from None
    return parts.scheme, parts.hostname, port


def resolve_public(url: str, allow_private: bool) -> list[str]:
    """The addresses ``url``'s host resolves to, all of them public unless private ones are
    allowed; DestinationRefused naming the first that is not. Blocking (DNS)."""
    _, host, port = parse_url(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DestinationRefused(f"cannot resolve {host}: {exc}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not allow_private:
        for address in addresses:
            why = _refused_address(ipaddress.ip_address(address.split("%")[0]))
            if why is not None:
                raise DestinationRefused(
                    f"{host} resolves to {address}, {why}; webhooks go to public addresses only "
                    "(the operator can allow private ones: decentral gateway --webhooks-allow-private)"
                )
    return addresses


@dataclass(frozen=True, slots=True)
class Webhook:
    webhook_id: str
    key_hash: str
    wallet: str
    url: str
    events: tuple[str, ...]
    secret: str
    threshold: int | None
    created: float

    def public(self) -> dict[str, Any]:
        return {
            "id": self.webhook_id,
            "object": "webhook",
            "url": self.url,
            "events": list(self.events),
            "credits_low_threshold": self.threshold,
            "created": int(self.created),
        }


class WebhookStore:
    """Webhooks, their per-wallet watch state and the outbox, in the journal's SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.db = open_db(path)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS webhooks (webhook_id TEXT PRIMARY KEY, key_hash TEXT NOT NULL, "
            "wallet TEXT NOT NULL, url TEXT NOT NULL, events TEXT NOT NULL, secret TEXT NOT NULL, "
            "threshold INTEGER, created REAL NOT NULL, low INTEGER NOT NULL DEFAULT 0, deposited INTEGER)"
        )
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (event_id TEXT PRIMARY KEY, webhook_id TEXT NOT NULL, "
            "type TEXT NOT NULL, body BLOB NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL, "
            "next_attempt REAL NOT NULL, last_error TEXT, created REAL NOT NULL, delivered REAL)"
        )

    # ---------------------------------------------------------------- webhooks

    def add(self, key_hash: str, wallet: str, url: str, events: list[str], threshold: int | None, deposited: int):
        webhook = Webhook(
            "wh_" + secrets.token_hex(12), key_hash, wallet, url, tuple(events), new_secret(), threshold, time.time()
        )
        self.db.execute(
            "INSERT INTO webhooks (webhook_id, key_hash, wallet, url, events, secret, threshold, created, deposited) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (webhook.webhook_id, key_hash, wallet, url, json.dumps(events), webhook.secret, threshold,
             webhook.created, deposited),
        )  # fmt: skip
        return webhook

    def of_key(self, key_hash: str) -> list[Webhook]:
        return self._select("key_hash = ?", (key_hash,))

    def of_wallet(self, wallet: str, event: str | None = None) -> list[Webhook]:
        hooks = self._select("wallet = ?", (wallet,))
        return [h for h in hooks if event is None or event in h.events]

    def get(self, webhook_id: str) -> Webhook | None:
        hooks = self._select("webhook_id = ?", (webhook_id,))
        return hooks[0] if hooks else None

    def delete(self, key_hash: str, webhook_id: str) -> bool:
        cur = self.db.execute("DELETE FROM webhooks WHERE webhook_id = ? AND key_hash = ?", (webhook_id, key_hash))
        return cur.rowcount == 1

    def watched_wallets(self) -> list[str]:
        rows = self.db.execute("SELECT DISTINCT wallet FROM webhooks").fetchall()
        return [r[0] for r in rows]

    def _select(self, where: str, args: tuple) -> list[Webhook]:
        rows = self.db.execute(
            "SELECT webhook_id, key_hash, wallet, url, events, secret, threshold, created FROM webhooks "
            f"WHERE {where} ORDER BY created",
            args,
        ).fetchall()
        return [Webhook(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), r[5], r[6], r[7]) for r in rows]

    # ------------------------------------------------------------ watch state

    def low_flag(self, webhook_id: str) -> bool:
        rows = self.db.execute("SELECT low FROM webhooks WHERE webhook_id = ?", (webhook_id,)).fetchall()
        return bool(rows and rows[0][0])

    def set_low(self, webhook_id: str, low: bool) -> None:
        self.db.execute("UPDATE webhooks SET low = ? WHERE webhook_id = ?", (int(low), webhook_id))

    def deposited_seen(self, webhook_id: str) -> int | None:
        rows = self.db.execute("SELECT deposited FROM webhooks WHERE webhook_id = ?", (webhook_id,)).fetchall()
        return rows[0][0] if rows else None

    def set_deposited(self, webhook_id: str, total: int) -> None:
        self.db.execute("UPDATE webhooks SET deposited = ? WHERE webhook_id = ?", (total, webhook_id))

    # ----------------------------------------------------------------- outbox

    def enqueue(self, webhook: Webhook, event_type: str, data: dict[str, Any]) -> str:
        event_id = "msg_" + secrets.token_hex(16)
        now = time.time()
        stamp = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        body = json.dumps({"type": event_type, "timestamp": stamp, "data": data}, separators=(",", ":")).encode()
        self.db.execute(
            "INSERT INTO outbox (event_id, webhook_id, type, body, state, attempts, next_attempt, created) "
            "VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)",
            (event_id, webhook.webhook_id, event_type, body, now, now),
        )
        return event_id

    def due(self, now: float, limit: int = 32) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT event_id, webhook_id, type, body, attempts FROM outbox WHERE state = 'pending' "
            "AND next_attempt <= ? ORDER BY next_attempt LIMIT ?",
            (now, limit),
        ).fetchall()
        return [dict(zip(("event_id", "webhook_id", "type", "body", "attempts"), r, strict=True)) for r in rows]

    def next_due(self) -> float | None:
        rows = self.db.execute("SELECT min(next_attempt) FROM outbox WHERE state = 'pending'").fetchall()
        return rows[0][0] if rows else None

    def delivered(self, event_id: str, attempts: int) -> None:
        self.db.execute(
            "UPDATE outbox SET state = 'delivered', attempts = ?, delivered = ?, last_error = NULL WHERE event_id = ?",
            (attempts, time.time(), event_id),
        )

    def retry(self, event_id: str, attempts: int, at: float, error: str) -> None:
        self.db.execute(
            "UPDATE outbox SET attempts = ?, next_attempt = ?, last_error = ? WHERE event_id = ?",
            (attempts, at, error, event_id),
        )

    def give_up(self, event_id: str, attempts: int, state: str, error: str) -> None:
        self.db.execute(
            "UPDATE outbox SET state = ?, attempts = ?, last_error = ? WHERE event_id = ?",
            (state, attempts, error, event_id),
        )

    def events(self, webhook_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT event_id, type, state, attempts, last_error, created, delivered FROM outbox "
            "WHERE webhook_id = ? ORDER BY created",
            (webhook_id,),
        ).fetchall()
        keys = ("id", "type", "status", "attempts", "last_error", "created", "delivered")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def close(self) -> None:
        self.db.close()


class Deliverer:
    """Sends the outbox: each due event to its webhook, retried with backoff."""

    def __init__(
        self,
        store: WebhookStore,
        *,
        allow_private: bool,
        retry_base: float,
        retry_cap: float,
        max_attempts: int,
        timeout: float,
    ) -> None:
        self.store = store
        self.allow_private = allow_private
        self.retry_base, self.retry_cap, self.max_attempts = retry_base, retry_cap, max_attempts
        self.http = httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)
        self.wake = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                due = self.store.due(time.time())
                if due:
                    await asyncio.gather(*(self._attempt(row) for row in due))
                    continue
            except Exception:  # a bad row or a busy database must not stop deliveries for good
                logger.exception("webhook delivery round failed; retrying in a second")
                await asyncio.sleep(1.0)
                continue
            upcoming = self.store.next_due()
            wait = 1.0 if upcoming is None else min(1.0, max(0.0, upcoming - time.time()))
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=wait)
            except TimeoutError:
                pass

    async def _attempt(self, row: dict[str, Any]) -> None:
        attempts = row["attempts"] + 1
        webhook = self.store.get(row["webhook_id"])
        if webhook is None:
            self.store.give_up(row["event_id"], attempts - 1, "dropped", "the webhook was deleted")
            return
        try:
            addresses = await asyncio.to_thread(resolve_public, webhook.url, self.allow_private)
        except DestinationRefused as exc:  # checked again at delivery: DNS may have changed
            self.store.give_up(row["event_id"], attempts, "refused", str(exc))
            logger.warning("webhook %s: event %s refused: %s", webhook.webhook_id, row["event_id"], exc)
            return
        error = await self._post(webhook, row, addresses)
        if error is None:
            self.store.delivered(row["event_id"], attempts)
        elif attempts >= self.max_attempts:
            self.store.give_up(row["event_id"], attempts, "failed", error)
        else:
            delay = min(self.retry_cap, self.retry_base * 2 ** (attempts - 1))
            self.store.retry(row["event_id"], attempts, time.time() + delay, error)

    async def _post(self, webhook: Webhook, row: dict[str, Any], addresses: list[str]) -> str | None:
        body = bytes(row["body"])
        timestamp = int(time.time())
        headers = {
            "webhook-id": row["event_id"],
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(webhook.secret, row["event_id"], timestamp, body),
            "content-type": "application/json",
            "user-agent": "decentral-gateway-webhooks",
        }
        url = webhook.url
        parts = urlsplit(url)
        if parts.scheme == "http" and addresses:  # connect to the address that was checked
            ip = addresses[0]
            host = f"[{ip}]" if ":" in ip else ip
            netloc = f"{host}:{parts.port}" if parts.port else host
            url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
            headers["host"] = parts.netloc
        try:
            reply = await self.http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= reply.status_code < 300:
            return None
        return f"answered {reply.status_code}"

    async def aclose(self) -> None:
        await self.http.aclose()
