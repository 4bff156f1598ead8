"""A worker's consent to a settlement: it signs only what it checked itself.

``settle_job`` pays only when the worker bound at lock co-signs the transaction (the program
requires ``Job.worker`` as a signer), and its signature covers the whole message: the Job
(the job id), the lifecycle nonce, the result hash, the token counts and the cost. A
:class:`ConsentSigner` holds the worker's key and signs a settlement message only if the
``settle_job`` in it matches what the worker produced:

- it pays this worker, for the lifecycle the worker ran;
- the result hash is the sha256 of the text the worker produced;
- the prompt tokens are the count the worker was given, and the completion tokens are at
  most what it produced;
- the cost is the published price for those tokens (capped at the amount locked).

Anything else raises :class:`ConsentRefused` and nothing is signed (the gateway refunds).
The signer has the shape of a solders ``Keypair`` where the settlement client needs one
(``pubkey()``, ``sign_message()``), so a worker in another process can answer the same
question over HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature

from decentral_chain import pda
from decentral_chain.abi import PROGRAM_ID
from decentral_chain.accounts import Config
from decentral_chain.errors import ConsentRefused, DecodeError
from decentral_chain.instructions import build_settle_job, decode_instruction_data


@dataclass(frozen=True, slots=True)
class Terms:
    """What a settlement asks the worker to sign."""

    worker: Pubkey
    job: Pubkey
    nonce: int
    result_hash: bytes
    prompt_tokens: int
    completion_tokens: int
    cost: int


def settlement_instruction(
    *,
    gateway: Pubkey,
    client: Pubkey,
    job_id: bytes,
    worker: Pubkey,
    config: Config,
    cost: int,
    result_hash: bytes,
    prompt_tokens: int,
    completion_tokens: int,
    nonce: int,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """The ``settle_job`` of a job, as the gateway signs it and as a worker's offer signs it
    in advance — one builder, so an offer is the gateway's message byte for byte. The gateway
    paid the Job's rent (it signs every lock), so it is the payer the rent returns to."""
    return build_settle_job(
        gateway=gateway,
        client=client,
        job_id=job_id,
        worker_token=pda.associated_token_address(worker, config.mint),
        treasury=config.treasury,
        payer=gateway,
        cost=cost,
        result_hash=result_hash,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        worker=worker,
        nonce=nonce,
        program_id=program_id,
    )


def settlement_terms(message: bytes, program_id: Pubkey = PROGRAM_ID) -> Terms:
    """The terms of the one ``settle_job`` in a legacy message (DecodeError otherwise)."""
    try:
        msg = Message.from_bytes(message)
    except ValueError as exc:
        raise DecodeError("not a transaction message") from exc
    keys = list(msg.account_keys)
    found = []
    for ix in msg.instructions:
        if keys[ix.program_id_index] != program_id:
            continue
        decoded = decode_instruction_data(bytes(ix.data), [keys[i] for i in bytes(ix.accounts)])
        if decoded.name == "settle_job":
            found.append(decoded)
    if len(found) != 1:
        raise DecodeError(f"the message holds {len(found)} settle_job instructions, not one")
    args, accounts = found[0].args, found[0].accounts
    return Terms(
        accounts["worker"],
        accounts["job"],
        args["nonce"],
        bytes(args["result_hash"]),
        args["prompt_tokens"],
        args["completion_tokens"],
        args["cost"],
    )


@dataclass(frozen=True)
class Produced:
    """What the worker itself knows of the job it ran."""

    job: Pubkey
    nonce: int
    result_hash: bytes
    prompt_tokens: int
    completion_tokens: int
    locked: int


class ConsentSigner:
    """The worker's key, signing one settlement it checked (see the module docstring)."""

    def __init__(
        self, keypair: Keypair, produced: Produced, price: Callable[[int, int], int], program_id: Pubkey = PROGRAM_ID
    ) -> None:
        self._keypair = keypair
        self._wallet = keypair.pubkey()
        self.produced = produced
        self.price = price
        self.program_id = program_id

    def pubkey(self) -> Pubkey:
        return self._wallet

    def check(self, terms: Terms) -> None:
        p = self.produced
        expected_cost = min(p.locked, self.price(terms.prompt_tokens, terms.completion_tokens))
        problems = [
            why
            for bad, why in (
                (terms.worker != self._wallet, f"it pays {terms.worker}, not this worker"),
                (terms.job != p.job or terms.nonce != p.nonce, "another job or lifecycle than the one run"),
                (terms.result_hash != p.result_hash, "a result hash that is not of the text produced"),
                (terms.prompt_tokens != p.prompt_tokens, f"{terms.prompt_tokens} prompt tokens, not {p.prompt_tokens}"),
                (
                    terms.completion_tokens > p.completion_tokens,
                    f"{terms.completion_tokens} completion tokens, more than the {p.completion_tokens} produced",
                ),
                (terms.cost != expected_cost, f"cost {terms.cost}, not the published price {expected_cost}"),
            )
            if bad
        ]
        if problems:
            raise ConsentRefused("the worker refuses to sign a settlement with " + "; ".join(problems))

    def sign_message(self, message: bytes) -> Signature:
        self.check(settlement_terms(message, self.program_id))
        return self._keypair.sign_message(message)
