"""Stateful property test: random deposit / withdraw / lock / settle / refund sequences by
several clients and workers, checked against a model after every step.

Invariants: vault balance = Σ free + Σ locked over all Credits; each client's free and
locked equal the model; locked = Σ of its open jobs; every job ends at most once; nothing
moves when a step fails.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from decentral_chain.errors import EscrowError, ProgramError, TransactionFailed
from decentral_chain.localnet.genesis import USDC, build_genesis
from decentral_chain.sbpf.build import ensure_built
from tests.conftest import Chain

E = EscrowError
CLIENTS, WORKERS = 3, 2


def expect_failure(fn, error: EscrowError | None = None) -> None:
    with pytest.raises(TransactionFailed) as info:
        fn()
    if error is not None:
        assert isinstance(info.value, ProgramError) and info.value.error == error, info.value


class EscrowMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.chain = Chain(build_genesis(ensure_built(), clients=CLIENTS, workers=WORKERS, client_usdc=500 * USDC))
        self.free = [0] * CLIENTS
        self.locked = [0] * CLIENTS
        self.has_credits = [False] * CLIENTS
        self.open: dict[bytes, tuple[int, int, int]] = {}  # job -> (client, worker, amount)
        self.ended: list[bytes] = []
        self.paid = [0] * WORKERS
        self.fees = 0
        self.next_job = 0

    def client(self, i: int):
        return self.chain.clients[i]

    @rule(c=st.integers(0, CLIENTS - 1), amount=st.integers(0, 120 * USDC))
    def deposit(self, c, amount):
        if amount == 0:
            expect_failure(lambda: self.chain.deposit(self.client(c), amount), E.ZeroAmount)
        elif amount > self.chain.balance(self.client(c).token):
            expect_failure(lambda: self.chain.deposit(self.client(c), amount))  # the token program refuses
        else:
            self.chain.deposit(self.client(c), amount)
            self.free[c] += amount
            self.has_credits[c] = True

    @rule(c=st.integers(0, CLIENTS - 1), amount=st.integers(0, 150 * USDC))
    def withdraw(self, c, amount):
        if not self.has_credits[c]:
            expect_failure(lambda: self.chain.withdraw(self.client(c), max(amount, 1)), E.AccountOwnedByWrongProgram)
        elif amount == 0:
            expect_failure(lambda: self.chain.withdraw(self.client(c), 0), E.ZeroAmount)
        elif amount > self.free[c]:
            expect_failure(lambda: self.chain.withdraw(self.client(c), amount), E.InsufficientCredits)
        else:
            self.chain.withdraw(self.client(c), amount)
            self.free[c] -= amount

    @rule(c=st.integers(0, CLIENTS - 1), w=st.integers(0, WORKERS - 1), amount=st.integers(0, 60 * USDC))
    def lock(self, c, w, amount):
        self.next_job += 1
        job_id = self.next_job.to_bytes(16, "big")  # deterministic: hypothesis replays exactly

        def do():
            return self.chain.lock(amount, client=self.client(c), worker=self.chain.workers[w].pubkey, job_id=job_id)

        if not self.has_credits[c]:  # account constraints come before argument checks, as in Anchor
            expect_failure(do, E.AccountOwnedByWrongProgram)
        elif amount == 0:
            expect_failure(do, E.ZeroAmount)
        elif amount > self.free[c]:
            expect_failure(do, E.InsufficientCredits)
        else:
            do()
            self.free[c] -= amount
            self.locked[c] += amount
            self.open[job_id] = (c, w, amount)

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def settle(self, data):
        job_id = data.draw(st.sampled_from(list(self.open)))
        c, w, amount = self.open[job_id]
        cost = data.draw(st.integers(0, amount + amount // 4 + 1))
        worker = self.chain.workers[w]
        do = lambda: self.chain.settle(job_id, cost, client=self.client(c), worker_token=worker.token)  # noqa: E731
        if self.chain.svm.get_clock().unix_timestamp >= self.chain.job(job_id).expires_at:
            expect_failure(do, E.JobExpired)  # past the deadline only a refund closes it
            return
        if cost > amount:
            expect_failure(do, E.CostExceedsLocked)
            return
        do()
        fee = cost * 250 // 10_000
        self.paid[w] += cost - fee
        self.fees += fee
        self.locked[c] -= amount
        self.free[c] += amount - cost
        del self.open[job_id]
        self.ended.append(job_id)

    @precondition(lambda self: self.open)
    @rule(data=st.data(), by_client=st.booleans())
    def refund(self, data, by_client):
        job_id = data.draw(st.sampled_from(list(self.open)))
        c, _, amount = self.open[job_id]
        if by_client:
            signer = self.client(c).keypair
            expired = self.chain.svm.get_clock().unix_timestamp >= self.chain.job(job_id).expires_at
            if not expired:
                expect_failure(lambda: self.chain.refund(job_id, signer=signer, client=self.client(c)), E.JobNotExpired)
                return
            self.chain.refund(job_id, signer=signer, client=self.client(c))
        else:
            self.chain.refund(job_id, client=self.client(c))
        self.locked[c] -= amount
        self.free[c] += amount
        del self.open[job_id]
        self.ended.append(job_id)

    @precondition(lambda self: self.ended)
    @rule(data=st.data(), settle=st.booleans())
    def end_again(self, data, settle):
        job_id = data.draw(st.sampled_from(self.ended))
        if settle:
            expect_failure(lambda: self.chain.settle(job_id, 0), E.AccountOwnedByWrongProgram)
        else:
            expect_failure(lambda: self.chain.refund(job_id), E.AccountOwnedByWrongProgram)

    @rule(seconds=st.integers(0, 400))
    def warp(self, seconds):
        self.chain.warp(seconds)

    @invariant()
    def balances_match_the_model(self):
        chain = self.chain
        onchain_free = [chain.free(self.client(i)) for i in range(CLIENTS)]
        onchain_locked = [chain.locked(self.client(i)) for i in range(CLIENTS)]
        assert onchain_free == self.free
        assert onchain_locked == self.locked
        assert chain.balance(chain.vault) == sum(onchain_free) + sum(onchain_locked)
        for i in range(CLIENTS):
            assert self.locked[i] == sum(a for (c, _, a) in self.open.values() if c == i)
            credits = chain.credits(self.client(i).pubkey)
            if credits is not None:
                assert credits.open_jobs == sum(1 for (c, _, _) in self.open.values() if c == i)
        assert [chain.balance(w.token) for w in chain.workers] == self.paid
        assert chain.balance(chain.treasury.token) == self.fees
        cfg = chain.config()
        assert (cfg.total_fees, cfg.total_paid) == (self.fees, sum(self.paid))


EscrowMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_escrow_state_machine = EscrowMachine.TestCase
