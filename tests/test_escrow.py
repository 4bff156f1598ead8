"""Happy paths of every instruction, balances checked to the base unit."""

from __future__ import annotations

import hashlib

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from decentral_chain import pda
from decentral_chain.abi import ERROR_CODES
from decentral_chain.errors import EscrowError
from decentral_chain.events import (
    ConfigUpdated,
    CreditsDeposited,
    CreditsWithdrawn,
    JobLocked,
    JobRefunded,
    JobSettled,
    parse_events,
)
from decentral_chain.instructions import (
    build_accept_admin,
    build_propose_admin,
    build_set_treasury,
    build_update_config,
)
from decentral_chain.localnet.genesis import USDC
from decentral_chain.localnet.svm import create_token_account
from tests.conftest import raises_escrow


def test_initialize_creates_config_and_vault(chain):
    cfg = chain.config()
    assert cfg.admin == chain.admin.pubkey()
    assert cfg.gateway == chain.gateway.pubkey()
    assert cfg.mint == chain.mint
    assert cfg.vault == pda.vault_address(chain.program_id)
    assert cfg.treasury == chain.treasury.token
    assert (cfg.fee_bps, cfg.refund_timeout, cfg.paused) == (250, 600, False)
    assert cfg.pending_admin == Pubkey.default()
    assert cfg.bump == Pubkey.find_program_address([b"config"], chain.program_id)[1]
    vault = chain.svm.get_account(cfg.vault)
    assert vault.owner == Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
    assert bytes(vault.data)[:32] == bytes(chain.mint)
    assert bytes(vault.data)[32:64] == bytes(chain.config_address)  # vault authority = Config PDA
    assert chain.balance(cfg.vault) == 0


def test_deposit_creates_credits_then_adds(chain):
    wallet_before = chain.balance(chain.client.token)
    meta = chain.deposit(amount=7 * USDC + 3)
    assert chain.free() == 7 * USDC + 3 and chain.locked() == 0
    assert chain.balance(chain.client.token) == wallet_before - 7 * USDC - 3
    assert chain.balance(chain.vault) == 7 * USDC + 3
    assert parse_events(meta.logs(), chain.program_id) == [
        CreditsDeposited(owner=chain.client.pubkey, free=7 * USDC + 3, locked=0, amount=7 * USDC + 3)
    ]
    chain.deposit(amount=1)
    credits = chain.credits(chain.client.pubkey)
    assert (credits.free, credits.total_deposited, credits.owner) == (7 * USDC + 4, 7 * USDC + 4, chain.client.pubkey)
    assert chain.config().total_deposited == 7 * USDC + 4


def test_withdraw_returns_free_credits(chain):
    chain.deposit(amount=10 * USDC)
    before = chain.balance(chain.client.token)
    meta = chain.withdraw(amount=4 * USDC + 1)
    assert chain.free() == 6 * USDC - 1
    assert chain.balance(chain.client.token) == before + 4 * USDC + 1
    assert chain.balance(chain.vault) == 6 * USDC - 1
    assert chain.config().total_withdrawn == 4 * USDC + 1
    assert parse_events(meta.logs(), chain.program_id) == [
        CreditsWithdrawn(owner=chain.client.pubkey, free=6 * USDC - 1, locked=0, amount=4 * USDC + 1)
    ]


def test_lock_job_moves_free_to_locked_and_records_the_job(chain):
    chain.deposit(amount=10 * USDC)
    gateway_lamports = chain.svm.get_balance(chain.gateway.pubkey())
    now = chain.svm.get_clock().unix_timestamp
    job_id = bytes(range(1, 17))
    meta = chain.send(chain.lock_ix(job_id, 3 * USDC), chain.gateway)
    assert (chain.free(), chain.locked()) == (7 * USDC, 3 * USDC)
    assert chain.credits(chain.client.pubkey).open_jobs == 1
    job = chain.job(job_id)
    assert job.job_id == job_id and job.client == chain.client.pubkey and job.worker == chain.worker.pubkey
    assert job.payer == chain.gateway.pubkey() and job.amount == 3 * USDC
    assert (job.created_at, job.expires_at) == (now, now + 600)
    assert (job.nonce, job.fee_bps) == (1, 250)  # the client's first lock; the rate in force
    assert chain.credits(chain.client.pubkey).locks == 1
    assert chain.balance(chain.vault) == 10 * USDC  # no token moves at lock
    rent = chain.svm.get_balance(pda.job_address(job_id, chain.program_id))
    assert rent == chain.svm.minimum_balance_for_rent_exemption(160)
    assert chain.svm.get_balance(chain.gateway.pubkey()) == gateway_lamports - rent - 5000
    assert parse_events(meta.logs(), chain.program_id) == [
        JobLocked(
            job_id=job_id,
            client=chain.client.pubkey,
            worker=chain.worker.pubkey,
            payer=chain.gateway.pubkey(),
            amount=3 * USDC,
            created_at=now,
            expires_at=now + 600,
            nonce=1,
            fee_bps=250,
        )
    ]


def test_settle_job_pays_worker_and_treasury_and_returns_the_rest(chain):
    chain.deposit(amount=10 * USDC)
    job_id = chain.lock(amount=3 * USDC)
    job_rent = chain.svm.get_balance(pda.job_address(job_id, chain.program_id))
    gateway_lamports = chain.svm.get_balance(chain.gateway.pubkey())
    cost = 1_234_567  # fee = floor(1_234_567 * 250 / 10_000) = 30_864 (rounding favours the worker)
    meta = chain.settle(job_id, cost, result=b"the answer")
    assert chain.balance(chain.worker.token) == cost - 30_864
    assert chain.balance(chain.treasury.token) == 30_864
    assert chain.balance(chain.vault) == 10 * USDC - cost
    assert (chain.free(), chain.locked()) == (10 * USDC - cost, 0)
    credits = chain.credits(chain.client.pubkey)
    assert (credits.open_jobs, credits.total_spent) == (0, cost)
    cfg = chain.config()
    assert (cfg.total_paid, cfg.total_fees, cfg.jobs_settled) == (cost - 30_864, 30_864, 1)
    # closed: zero lamports, no data, back to the system program; rent went to the payer
    closed = chain.svm.get_account(pda.job_address(job_id, chain.program_id))
    assert (closed.lamports, bytes(closed.data), closed.owner) == (0, b"", Pubkey.default())
    # the gateway pays the fee of two signatures (its own and the co-signing worker's)
    assert chain.svm.get_balance(chain.gateway.pubkey()) == gateway_lamports + job_rent - 2 * 5000
    assert parse_events(meta.logs(), chain.program_id) == [
        JobSettled(
            job_id=job_id,
            client=chain.client.pubkey,
            worker=chain.worker.pubkey,
            result_hash=hashlib.sha256(b"the answer").digest(),
            cost=cost,
            fee=30_864,
            refunded=3 * USDC - cost,
            prompt_tokens=11,
            completion_tokens=22,
            nonce=1,
        )
    ]


def test_settle_at_full_cost_and_at_zero_cost(chain):
    chain.deposit(amount=10 * USDC)
    full = chain.lock(amount=2 * USDC)
    chain.settle(full, 2 * USDC)
    zero = chain.lock(amount=2 * USDC)
    chain.settle(zero, 0)
    assert chain.balance(chain.worker.token) == 2 * USDC - 50_000
    assert chain.balance(chain.treasury.token) == 50_000
    assert (chain.free(), chain.locked()) == (8 * USDC, 0)


def test_fee_rounds_down_to_the_workers_benefit(chain):
    chain.deposit(amount=USDC)
    job_id = chain.lock(amount=100)
    chain.settle(job_id, 39)  # 39 * 250 / 10_000 = 0.975 -> fee 0
    assert (chain.balance(chain.worker.token), chain.balance(chain.treasury.token)) == (39, 0)


def test_refund_by_gateway_returns_everything(chain):
    chain.deposit(amount=10 * USDC)
    job_id = chain.lock(amount=4 * USDC)
    meta = chain.refund(job_id)
    assert (chain.free(), chain.locked()) == (10 * USDC, 0)
    assert chain.balance(chain.vault) == 10 * USDC
    assert chain.job(job_id) is None
    assert chain.config().jobs_refunded == 1
    assert parse_events(meta.logs(), chain.program_id) == [
        JobRefunded(
            job_id=job_id,
            client=chain.client.pubkey,
            worker=chain.worker.pubkey,
            authority=chain.gateway.pubkey(),
            amount=4 * USDC,
            nonce=1,
        )
    ]


def test_client_refunds_itself_only_after_expiry(chain):
    chain.deposit(amount=10 * USDC)
    job_id = chain.lock(amount=4 * USDC)
    with raises_escrow(EscrowError.JobNotExpired):
        chain.refund(job_id, signer=chain.client.keypair)
    chain.warp(599)
    with raises_escrow(EscrowError.JobNotExpired):
        chain.refund(job_id, signer=chain.client.keypair)
    chain.warp(1)
    chain.refund(job_id, signer=chain.client.keypair)
    assert (chain.free(), chain.locked()) == (10 * USDC, 0)


def test_update_config_changes_only_what_is_given(chain):
    new_gateway = Keypair().pubkey()
    meta = chain.send(
        build_update_config(
            admin=chain.admin.pubkey(), fee_bps=1_000, gateway=new_gateway, program_id=chain.program_id
        ),
        chain.admin,
    )
    cfg = chain.config()
    assert (cfg.fee_bps, cfg.gateway, cfg.refund_timeout, cfg.paused) == (1_000, new_gateway, 600, False)
    assert parse_events(meta.logs(), chain.program_id) == [
        ConfigUpdated(
            admin=chain.admin.pubkey(),
            pending_admin=Pubkey.default(),
            gateway=new_gateway,
            mint=chain.mint,
            vault=chain.vault,
            treasury=chain.treasury.token,
            refund_timeout=600,
            fee_bps=1_000,
            paused=False,
        )
    ]
    chain.send(
        build_update_config(admin=chain.admin.pubkey(), refund_timeout=30, paused=True, program_id=chain.program_id),
        chain.admin,
    )
    cfg = chain.config()
    assert (cfg.fee_bps, cfg.gateway, cfg.refund_timeout, cfg.paused) == (1_000, new_gateway, 30, True)


def test_set_treasury_redirects_fees(chain):
    other = chain.new_wallet()
    chain.send(
        build_set_treasury(admin=chain.admin.pubkey(), treasury=other.token, program_id=chain.program_id), chain.admin
    )
    chain.deposit(amount=USDC)
    job_id = chain.lock(amount=USDC)
    chain.settle(job_id, USDC, treasury=other.token)
    assert chain.balance(other.token) == 25_000 and chain.balance(chain.treasury.token) == 0


def test_admin_handover_takes_two_steps(chain):
    new_admin = Keypair()
    chain.svm.airdrop(new_admin.pubkey(), 10**9)
    chain.send(
        build_propose_admin(admin=chain.admin.pubkey(), new_admin=new_admin.pubkey(), program_id=chain.program_id),
        chain.admin,
    )
    assert chain.config().admin == chain.admin.pubkey()  # nothing changes until accepted
    assert chain.config().pending_admin == new_admin.pubkey()
    chain.send(build_accept_admin(new_admin=new_admin.pubkey(), program_id=chain.program_id), new_admin)
    cfg = chain.config()
    assert (cfg.admin, cfg.pending_admin) == (new_admin.pubkey(), Pubkey.default())
    with raises_escrow(EscrowError.NotAdmin):
        chain.send(build_update_config(admin=chain.admin.pubkey(), fee_bps=1, program_id=chain.program_id), chain.admin)
    chain.send(build_update_config(admin=new_admin.pubkey(), fee_bps=1, program_id=chain.program_id), new_admin)
    assert chain.config().fee_bps == 1


def test_paused_blocks_deposit_and_lock_but_not_exits(chain):
    chain.deposit(amount=10 * USDC)
    open_job = chain.lock(amount=2 * USDC)
    other_job = chain.lock(amount=2 * USDC)
    chain.send(build_update_config(admin=chain.admin.pubkey(), paused=True, program_id=chain.program_id), chain.admin)
    with raises_escrow(EscrowError.ProgramPaused):
        chain.deposit(amount=USDC)
    with raises_escrow(EscrowError.ProgramPaused):
        chain.lock(amount=USDC)
    chain.settle(open_job, USDC)
    chain.refund(other_job)
    chain.withdraw(amount=USDC)
    assert (chain.free(), chain.locked()) == (8 * USDC, 0)


def test_many_clients_keep_separate_balances(chain):
    a, b = chain.clients
    chain.deposit(a, 5 * USDC)
    chain.deposit(b, 3 * USDC)
    job = chain.lock(amount=2 * USDC, client=b)
    chain.settle(job, USDC, client=b)
    assert (chain.free(a), chain.free(b)) == (5 * USDC, 2 * USDC)
    assert chain.balance(chain.vault) == 7 * USDC


def test_error_codes_are_stable():
    assert ERROR_CODES["InstructionMissing"] == 6000
    assert EscrowError.NoPendingAdmin == 6042  # codes are wire format: new errors are appended
    assert EscrowError.LifecycleMismatch == 6000 + len(ERROR_CODES) - 1


def test_worker_without_token_account_can_be_paid_once_it_has_one(chain):
    worker = Keypair()
    chain.svm.airdrop(worker.pubkey(), 10**9)
    chain.deposit(amount=USDC)
    job_id = chain.lock(amount=USDC, worker=worker.pubkey())
    token = create_token_account(chain.svm, worker, chain.mint, worker.pubkey())
    chain.settle(job_id, 1000, worker_token=token, signer=worker)
    assert chain.balance(token) == 975


def test_new_job_ids_lock_with_one_bump_try_and_any_id_still_works(chain):
    from decentral_chain.pda import new_job_id

    chain.deposit(amount=USDC)
    ids = [new_job_id(chain.program_id) for _ in range(4)]
    assert all(Pubkey.find_program_address([b"job", i], chain.program_id)[1] == 255 for i in ids)
    assert len(set(ids)) == 4 and all(i[6] >> 4 == 4 for i in ids)  # UUID version 4
    units = {chain.send(chain.lock_ix(i, 1), chain.gateway).compute_units_consumed() for i in ids}
    assert len(units) == 1  # same cost for every such id
    low = next(
        i
        for i in (bytes([n]) * 16 for n in range(1, 256))
        if Pubkey.find_program_address([b"job", i], chain.program_id)[1] < 255
    )
    chain.lock(amount=1, job_id=low)  # other ids lock too, at 1,500 CU per extra bump try
    assert chain.job(low).amount == 1
