"""The gateway ↔ worker protocol: OpenAI's chat completion body, plus who asks and for which job.

Every request a gateway sends a worker (``POST /v1/chat/completions``, ``POST /v1/consent``)
is signed with the gateway's key over what it asks::

    decentral-worker-request
    <unix seconds>            x-decentral-timestamp
    <random hex nonce>        x-decentral-nonce
    <METHOD> <path>
    <sha256 of the body, hex>

and the base58 ed25519 signature travels in ``x-decentral-signature``. A worker configured
for that gateway's public key accepts a request only if the signature verifies, the
timestamp is within ``MAX_SKEW_S`` of its clock and the nonce was not seen in that window
(so a captured request cannot be played again, to this worker or after the window).

The completion body carries ``decentral: {"job_id": <uuid>, "prompt_tokens": <the
gateway's count>}``; the worker answers in OpenAI's shapes with ``usage`` by its own count
(the last chunk of a stream carries it). ``n`` > 1 (not streamed) runs the choices one after
the other and answers them together; the text the worker signs for is :func:`result_text`.
``POST /v1/consent`` takes ``{"job_id", "message":
<base64 settlement message>}`` and answers ``{"signature": <base58>}`` or a 409 naming what
the worker refuses to sign.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

MAX_SKEW_S = 30.0
DOMAIN = b"decentral-worker-request"
TIMESTAMP, NONCE, SIGNATURE = "x-decentral-timestamp", "x-decentral-nonce", "x-decentral-signature"


def request_message(timestamp: str, nonce: str, method: str, path: str, body: bytes) -> bytes:
    return b"\n".join(
        (
            DOMAIN,
            timestamp.encode(),
            nonce.encode(),
            f"{method.upper()} {path}".encode(),
            hashlib.sha256(body).hexdigest().encode(),
        )
    )


def sign_request(keypair: Keypair, method: str, path: str, body: bytes) -> dict[str, str]:
    """The headers that authenticate one request of the gateway's."""
    timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
    signature = keypair.sign_message(request_message(timestamp, nonce, method, path, body))
    return {TIMESTAMP: timestamp, NONCE: nonce, SIGNATURE: str(signature)}


MAX_CHOICES = 10  # n, as OpenAI allows it here


def result_text(texts: list[str]) -> str:
    """What a job's result hash covers: the one choice's text, or for ``n`` > 1 the choices'
    texts as a compact JSON array in index order (UTF-8, not ASCII-escaped) — gateway and
    worker compute it the same way."""
    if len(texts) == 1:
        return texts[0]
    return json.dumps(texts, ensure_ascii=False, separators=(",", ":"))


def merge_choices(results: list[dict]) -> dict:
    """``n`` completions of one prompt as one OpenAI response: choices in order, the prompt
    counted once, the completion tokens summed."""
    first = results[0]
    choices = []
    for i, r in enumerate(results):
        choice = dict(r["choices"][0])
        choice["index"] = i
        choices.append(choice)
    usages = [r.get("usage") or {} for r in results]
    prompt = usages[0].get("prompt_tokens")
    completion = sum(int(u.get("completion_tokens") or 0) for u in usages)
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    usage["total_tokens"] = None if prompt is None else prompt + completion
    return first | {"choices": choices, "usage": usage}


def choice_kwargs(kwargs: dict, i: int) -> dict:
    """The i-th of n runs: its own seed (seed + i when one was given), one choice."""
    out = {k: v for k, v in kwargs.items() if k != "n"}
    if i and out.get("seed") is not None:
        out["seed"] = out["seed"] + i
    return out


def model_list(model_id: str, owned_by: str, info: dict) -> dict:
    """OpenAI's ``/v1/models`` answer for one model, with our ``decentral`` object (prices per
    1,000 prompt / completion tokens, and for a worker its wallet, context and slots — what a
    gateway routes by)."""
    model = {"id": model_id, "object": "model", "created": 0, "owned_by": owned_by, "decentral": info}
    return {"object": "list", "data": [model]}


class RequestRefused(Exception):
    """A request that is not the configured gateway's, or is a replay (the worker's 401)."""


class RequestVerifier:
    """Accepts requests signed by one gateway key, each nonce once within the skew window."""

    def __init__(self, gateway: Pubkey, max_skew: float = MAX_SKEW_S) -> None:
        self.gateway = gateway
        self.max_skew = max_skew
        self._seen: OrderedDict[str, float] = OrderedDict()  # nonce → when it stops mattering

    def verify(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> None:
        timestamp, nonce, signature = (headers.get(h, "") for h in (TIMESTAMP, NONCE, SIGNATURE))
        if not (timestamp and nonce and signature):
            raise RequestRefused("unsigned request: this worker takes jobs from its gateway only")
        try:
            sent = int(timestamp)
            sig = Signature.from_string(signature)
        except ValueError:
            raise RequestRefused("malformed request signature") from None
        now = time.time()
        if abs(now - sent) > self.max_skew:
            raise RequestRefused(f"request timestamp {sent} is more than {self.max_skew:g} s from this worker's clock")
        if len(nonce) > 64 or not sig.verify(self.gateway, request_message(timestamp, nonce, method, path, body)):
            raise RequestRefused("the request is not signed by this worker's gateway")
        while self._seen and next(iter(self._seen.values())) < now:
            self._seen.popitem(last=False)
        if nonce in self._seen:
            raise RequestRefused("replayed request (its nonce was seen)")
        self._seen[nonce] = now + 2 * self.max_skew
