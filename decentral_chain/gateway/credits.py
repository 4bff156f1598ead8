"""Each client's free credits as the gateway last read them on chain.

Every job is priced against the client's free credits before it is locked (402 if they do
not cover the ceiling). Reading the Credits account there would put an RPC round trip on
every request: 1–3 ms on localhost, tens of ms to a cluster. The chain is the authority
anyway — ``lock_job`` fails with InsufficientCredits when free < amount — so the check uses
a recent reading instead, kept honest in four ways:

* a client's first request, and any request whose reading is older than ``max_age``, reads
  the chain; a reading past half its age is read again in the background;
* the gateway's own transactions move the reading by exactly what they move on chain: a
  lock sent takes its amount at once (concurrent requests of one client cannot spend the
  same credits twice), a settlement confirmed gives back the amount it did not charge, a
  refund the whole amount;
* a request the reading would refuse is checked against the chain before it gets 402, so
  a deposit counts at once;
* a lock the chain refuses anyway (credits withdrawn since the reading) ends the request
  with 402 and nothing charged (``lifecycle.locked``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from solders.pubkey import Pubkey

from decentral_chain.client import EscrowClient
from decentral_chain.errors import DecentralError

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Reading:
    free: int
    at: float  # monotonic time the read was sent


class CreditsBook:
    def __init__(self, escrow: EscrowClient, *, max_age: float = 10.0) -> None:
        self.escrow = escrow
        self.max_age = max_age
        self._readings: dict[Pubkey, _Reading] = {}
        self._refreshing: dict[Pubkey, asyncio.Task] = {}  # at most one background read per client

    async def read(self, client: Pubkey) -> int:
        """The client's free credits on chain now (and remembered)."""
        sent = time.monotonic()
        credits = await self.escrow.get_credits(client)
        free = credits.free if credits else 0
        last = self._readings.get(client)
        if last is None or last.at <= sent:  # a slower, older read never overwrites a newer one
            self._readings[client] = _Reading(free, sent)
        return free

    async def free(self, client: Pubkey) -> tuple[int, bool]:
        """Free credits and whether they come from a reading (True) rather than the chain now."""
        reading = self._readings.get(client)
        if reading is not None:
            age = time.monotonic() - reading.at
            if age <= self.max_age:
                if age > self.max_age / 2:
                    self.refresh(client)
                return reading.free, True
        return await self.read(client), False

    def move(self, client: Pubkey, delta: int) -> None:
        """One of the gateway's own transactions moved the client's free credits by ``delta``
        (a lock sent: −amount; a settlement confirmed: amount − cost; a refund: +amount)."""
        reading = self._readings.get(client)
        if reading is not None:
            reading.free += delta

    def forget(self, client: Pubkey) -> None:
        """The effect of a transaction is unknown: the next request reads the chain."""
        self._readings.pop(client, None)

    def refresh(self, client: Pubkey) -> None:
        """Read the client again in the background (one read at a time per client)."""
        if client in self._refreshing:
            return

        async def read() -> None:
            try:
                await self.read(client)
            except DecentralError as exc:  # the next request reads the chain itself
                self.forget(client)
                logger.warning("could not read the credits of %s: %s", client, exc)
            finally:
                del self._refreshing[client]

        self._refreshing[client] = asyncio.create_task(read())

    async def aclose(self) -> None:
        tasks = list(self._refreshing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
