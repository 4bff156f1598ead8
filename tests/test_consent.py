"""A worker's consent: it signs a settlement only when the settle_job in it is what it
produced — its own payout, this job and lifecycle, the hash of its text, token counts within
its own, the published price — and refuses, naming why, otherwise."""

from __future__ import annotations

import hashlib

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey

from decentral_chain import pda
from decentral_chain.errors import ConsentRefused, DecodeError
from decentral_chain.gateway.consent import ConsentSigner, Produced, settlement_terms
from decentral_chain.instructions import build_deposit, build_settle_job

WORKER, GATEWAY = Keypair(), Keypair()
JOB_ID = bytes(range(16))
TEXT_HASH = hashlib.sha256(b"the worker's own answer").digest()
PRODUCED = Produced(pda.job_address(JOB_ID), 4, TEXT_HASH, prompt_tokens=30, completion_tokens=20, locked=50_000)


def price(prompt_tokens: int, completion_tokens: int) -> int:
    return prompt_tokens * 100 + completion_tokens * 200  # 30, 20 → 7,000


def message(**overrides) -> bytes:
    fields = dict(
        gateway=GATEWAY.pubkey(),
        client=Pubkey.new_unique(),
        job_id=JOB_ID,
        worker_token=Pubkey.new_unique(),
        treasury=Pubkey.new_unique(),
        payer=GATEWAY.pubkey(),
        cost=7_000,
        result_hash=TEXT_HASH,
        prompt_tokens=30,
        completion_tokens=20,
        worker=WORKER.pubkey(),
        nonce=4,
    )
    fields.update(overrides)
    return bytes(Message.new_with_blockhash([build_settle_job(**fields)], GATEWAY.pubkey(), Hash.new_unique()))


def test_the_worker_signs_what_it_produced():
    signer = ConsentSigner(WORKER, PRODUCED, price)
    msg = message()
    assert signer.pubkey() == WORKER.pubkey()
    assert signer.sign_message(msg).verify(WORKER.pubkey(), msg)
    terms = settlement_terms(msg)
    assert (terms.nonce, terms.cost, terms.completion_tokens) == (4, 7_000, 20)
    fewer = message(completion_tokens=10, cost=5_000)  # a client that left early: fewer tokens, their price
    assert signer.sign_message(fewer).verify(WORKER.pubkey(), fewer)


@pytest.mark.parametrize(
    "overrides,why",
    [
        pytest.param({"worker": Keypair().pubkey()}, "not this worker", id="another-worker"),
        pytest.param({"job_id": bytes(16 * [9])}, "another job or lifecycle", id="another-job"),
        pytest.param({"nonce": 5}, "another job or lifecycle", id="another-lifecycle"),
        pytest.param({"result_hash": bytes(32)}, "not of the text produced", id="another-result"),
        pytest.param({"completion_tokens": 21, "cost": 7_200}, "more than the 20 produced", id="more-tokens"),
        pytest.param({"prompt_tokens": 31, "cost": 7_100}, "31 prompt tokens", id="other-prompt"),
        pytest.param({"cost": 7_001}, "not the published price", id="overcharged"),
        pytest.param({"cost": 6_999}, "not the published price", id="underpaid"),
    ],
)
def test_the_worker_refuses_anything_else(overrides, why):
    with pytest.raises(ConsentRefused, match=why):
        ConsentSigner(WORKER, PRODUCED, price).sign_message(message(**overrides))


def test_the_price_is_capped_at_the_lock():
    capped = Produced(PRODUCED.job, 4, TEXT_HASH, 30, 20, locked=6_000)
    assert ConsentSigner(WORKER, capped, price).sign_message(message(cost=6_000))
    with pytest.raises(ConsentRefused):
        ConsentSigner(WORKER, capped, price).sign_message(message(cost=7_000))


def test_a_message_without_one_settlement_is_not_signed():
    deposit = build_deposit(owner=WORKER.pubkey(), source=Pubkey.new_unique(), amount=1)
    other = bytes(Message.new_with_blockhash([deposit], WORKER.pubkey(), Hash.new_unique()))
    with pytest.raises(DecodeError, match="0 settle_job"):
        ConsentSigner(WORKER, PRODUCED, price).sign_message(other)
    with pytest.raises(DecodeError):
        ConsentSigner(WORKER, PRODUCED, price).sign_message(b"garbage")
