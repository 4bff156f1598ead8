"""Attacks on real instructions, each asserting the specific named error.

One test per Sealevel attack class (coral-xyz/sealevel-attacks), then the escrow's own
rules, then negative tests generated per account position from the ABI table.
"""

from __future__ import annotations

import struct
import uuid

import pytest
from solders.account import Account
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer

from decentral_chain import pda
from decentral_chain.abi import (
    INSTRUCTIONS,
    SYSTEM_PROGRAM_ID,
    TOKEN_2022_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
)
from decentral_chain.errors import EscrowError
from decentral_chain.instructions import (
    build_accept_admin,
    build_deposit,
    build_initialize,
    build_propose_admin,
    build_set_treasury,
    build_update_config,
    build_withdraw,
)
from decentral_chain.localnet.genesis import USDC
from decentral_chain.localnet.svm import create_mint, create_token_account
from tests.conftest import Chain, raises_escrow, valid_instructions

E = EscrowError


def replace_account(ix: Instruction, index: int, key: Pubkey, **flags: bool) -> Instruction:
    metas = list(ix.accounts)
    old = metas[index]
    metas[index] = AccountMeta(key, flags.get("is_signer", old.is_signer), flags.get("is_writable", old.is_writable))
    return Instruction(ix.program_id, bytes(ix.data), metas)


def index_of(name: str, account: str) -> int:
    spec = next(ix for ix in INSTRUCTIONS if ix.name == name)
    return [a.name for a in spec.accounts].index(account)


def funded(chain: Chain) -> Keypair:
    kp = Keypair()
    chain.svm.airdrop(kp.pubkey(), 10 * 10**9)
    return kp


def snapshot(chain: Chain) -> tuple[int, ...]:
    """Every token balance and credit of the scenario: nothing may move on a failed attack."""
    wallets = [*chain.clients, *chain.workers, chain.treasury]
    return (
        chain.balance(chain.vault),
        *(chain.balance(w.token) for w in wallets),
        *(chain.free(c) for c in chain.clients),
        *(chain.locked(c) for c in chain.clients),
    )


# --------------------------------------------------------------- Sealevel attack classes


def test_signer_authorization(chain):
    """Only the config gateway may lock or settle; only the admin may reconfigure."""
    chain.deposit(amount=10 * USDC)
    attacker = funded(chain)
    job_id = uuid.uuid4().bytes
    forged = replace_account(chain.lock_ix(job_id), 0, attacker.pubkey())
    with raises_escrow(E.NotGateway):
        chain.send(forged, attacker)
    real_job = chain.lock(amount=2 * USDC)
    with raises_escrow(E.NotGateway):
        chain.send(chain.settle_ix(real_job, 2 * USDC, gateway=attacker.pubkey()), attacker, chain.worker.keypair)
    with raises_escrow(E.NotAdmin):
        chain.send(
            build_update_config(admin=attacker.pubkey(), gateway=attacker.pubkey(), program_id=chain.program_id),
            attacker,
        )
    with raises_escrow(E.NotJobParty):
        chain.refund(real_job, signer=attacker)


def test_signer_authorization_initialize_needs_the_upgrade_authority(raw_genesis):
    g = raw_genesis
    attacker = Keypair()
    g.svm.airdrop(attacker.pubkey(), 10**10)
    ix = build_initialize(
        admin=attacker.pubkey(),
        mint=g.mint,
        gateway=attacker.pubkey(),
        treasury=g.treasury.token,
        fee_bps=10_000,
        refund_timeout=60,
        program_id=g.program_id,
    )
    with raises_escrow(E.NotUpgradeAuthority):
        Chain(g).send(ix, attacker)


def test_account_data_matching_settlement_pays_only_the_bound_worker(chain):
    chain.deposit(amount=10 * USDC)
    chain.deposit(chain.clients[1], amount=10 * USDC)
    job_id = chain.lock(amount=2 * USDC)
    attacker = chain.new_wallet()
    before = snapshot(chain)
    with raises_escrow(E.TokenOwnerMismatch):
        chain.settle(job_id, 2 * USDC, worker_token=attacker.token)
    with raises_escrow(E.TokenOwnerMismatch):
        chain.settle(job_id, 2 * USDC, worker_token=chain.workers[1].token)  # another real worker
    with raises_escrow(E.CreditsMismatch):
        chain.settle(job_id, 2 * USDC, client=chain.clients[1])
    with raises_escrow(E.TreasuryMismatch):
        chain.settle(job_id, 2 * USDC, treasury=attacker.token)
    ix = replace_account(chain.settle_ix(job_id, USDC), index_of("settle_job", "vault"), attacker.token)
    with raises_escrow(E.VaultMismatch, account="vault"):
        chain.send(ix, chain.gateway, chain.worker.keypair)
    assert snapshot(chain) == before
    chain.settle(job_id, 2 * USDC)
    assert chain.balance(chain.worker.token) == 2 * USDC - 50_000


def test_account_data_matching_token_mint(chain):
    """A worker token account of another mint (same owner) is refused."""
    chain.deposit(amount=10 * USDC)
    job_id = chain.lock(amount=USDC)
    fake_mint = create_mint(chain.svm, chain.mint_authority, chain.mint_authority.pubkey(), 6)
    fake_token = create_token_account(chain.svm, chain.worker.keypair, fake_mint, chain.worker.pubkey)
    with raises_escrow(E.MintMismatch):
        chain.settle(job_id, USDC, worker_token=fake_token)


def test_account_data_matching_deposit_from_someone_elses_token_account(chain):
    attacker = funded(chain)
    ix = build_deposit(owner=attacker.pubkey(), source=chain.client.token, amount=USDC, program_id=chain.program_id)
    with raises_escrow(E.TokenOwnerMismatch):
        chain.send(ix, attacker)


def test_owner_checks_forged_config_is_refused(chain):
    """A byte-identical Config that names the attacker as gateway, owned by another program."""
    chain.deposit(amount=10 * USDC)
    attacker = funded(chain)
    real = chain.svm.get_account(chain.config_address)
    data = bytearray(bytes(real.data))
    data[72:104] = bytes(attacker.pubkey())  # Config.gateway
    fake = Keypair().pubkey()
    chain.svm.set_account(fake, Account(real.lamports, bytes(data), SYSTEM_PROGRAM_ID, False))
    ix = replace_account(chain.lock_ix(uuid.uuid4().bytes), 1, fake)
    ix = replace_account(ix, 0, attacker.pubkey())
    with raises_escrow(E.AccountOwnedByWrongProgram):
        chain.send(ix, attacker)


def test_owner_checks_token_2022_and_forged_token_accounts(chain):
    chain.deposit(amount=10 * USDC)
    job_id = chain.lock(amount=USDC)
    real = chain.svm.get_account(chain.worker.token)
    for owner in (TOKEN_2022_PROGRAM_ID, Keypair().pubkey()):
        fake = Keypair().pubkey()
        chain.svm.set_account(fake, Account(real.lamports, bytes(real.data), owner, False))
        with raises_escrow(E.InvalidTokenAccount):
            chain.settle(job_id, USDC, worker_token=fake)


def test_owner_checks_token_2022_mint_rejected_at_initialize(raw_genesis):
    g = raw_genesis
    real = g.svm.get_account(g.mint)  # the same mint bytes, owned by Token-2022
    mint22 = Keypair().pubkey()
    g.svm.set_account(mint22, Account(real.lamports, bytes(real.data), TOKEN_2022_PROGRAM_ID, False))
    ix = build_initialize(
        admin=g.admin.pubkey(),
        mint=mint22,
        gateway=g.gateway.pubkey(),
        treasury=g.treasury.token,
        fee_bps=100,
        refund_timeout=60,
        program_id=g.program_id,
    )
    with raises_escrow(E.InvalidMint):
        Chain(g).send(ix, g.admin)


def test_type_cosplay(chain):
    """An open Job passed where Credits are expected; a same-size account of another type."""
    chain.deposit(amount=10 * USDC)
    job_id = chain.lock(amount=USDC)
    job_key = pda.job_address(job_id, chain.program_id)
    ix = replace_account(chain.lock_ix(uuid.uuid4().bytes), index_of("lock_job", "credits"), job_key)
    with raises_escrow(E.InvalidAccountSize):
        chain.send(ix, chain.gateway)
    # Same owner and size as Credits, but a Job discriminator: only the discriminator differs.
    credits_key = pda.credits_address(chain.client.pubkey, chain.program_id)
    real = chain.svm.get_account(credits_key)
    data = bytearray(bytes(real.data))
    data[:8] = bytes(chain.svm.get_account(job_key).data)[:8]
    chain.svm.set_account(credits_key, Account(real.lamports, bytes(data), chain.program_id, False))
    with raises_escrow(E.AccountDiscriminatorMismatch):
        chain.lock(amount=USDC)


def test_initialization_cannot_reinitialize_config(chain):
    ix = build_initialize(
        admin=chain.admin.pubkey(),
        mint=chain.mint,
        gateway=Keypair().pubkey(),
        treasury=chain.treasury.token,
        fee_bps=0,
        refund_timeout=60,
        program_id=chain.program_id,
    )
    with raises_escrow(E.AccountAlreadyInitialized):
        chain.send(ix, chain.admin)
    assert chain.config().gateway == chain.gateway.pubkey()


def test_initialization_cannot_reopen_an_open_job(chain):
    chain.deposit(amount=10 * USDC)
    job_id = chain.lock(amount=USDC)
    with raises_escrow(E.JobAlreadyExists):
        chain.lock(amount=2 * USDC, job_id=job_id, worker=chain.workers[1].pubkey)
    assert chain.job(job_id).amount == USDC and chain.job(job_id).worker == chain.worker.pubkey


def test_initialization_survives_a_prefunded_pda(chain):
    """Lamports sent to a future Credits / Job address must not block its creation."""
    griefer = funded(chain)
    credits_key = pda.credits_address(chain.client.pubkey, chain.program_id)
    job_id = uuid.uuid4().bytes
    job_key = pda.job_address(job_id, chain.program_id)
    chain.send(
        [
            transfer(TransferParams(from_pubkey=griefer.pubkey(), to_pubkey=credits_key, lamports=1_000_000)),
            transfer(TransferParams(from_pubkey=griefer.pubkey(), to_pubkey=job_key, lamports=5_000_000)),
        ],
        griefer,
    )
    chain.deposit(amount=3 * USDC)
    chain.lock(amount=USDC, job_id=job_id)
    assert chain.free() == 2 * USDC and chain.job(job_id).amount == USDC
    assert chain.svm.get_account(credits_key).lamports == chain.svm.minimum_balance_for_rent_exemption(88)
    assert chain.svm.get_account(job_key).lamports == 5_000_000  # more than rent: nothing to top up


def test_arbitrary_cpi_token_program(chain):
    for fake in (TOKEN_2022_PROGRAM_ID, chain.program_id, Keypair().pubkey()):
        ix = build_deposit(
            owner=chain.client.pubkey, source=chain.client.token, amount=USDC, program_id=chain.program_id
        )
        ix = replace_account(ix, index_of("deposit", "token_program"), fake)
        with raises_escrow(E.InvalidTokenProgram, account="token_program"):
            chain.send(ix, chain.client.keypair)


def test_arbitrary_cpi_system_program(chain):
    chain.deposit(amount=USDC)
    ix = replace_account(chain.lock_ix(uuid.uuid4().bytes), index_of("lock_job", "system_program"), TOKEN_PROGRAM_ID)
    with raises_escrow(E.InvalidSystemProgram):
        chain.send(ix, chain.gateway)


def test_duplicate_mutable_accounts(chain):
    """The treasury's owner as worker: paying worker and fee into one account is refused."""
    chain.deposit(amount=10 * USDC)
    job_id = chain.lock(amount=USDC, worker=chain.treasury.pubkey)
    with raises_escrow(E.DuplicateAccount):
        chain.settle(job_id, USDC, worker_token=chain.treasury.token, signer=chain.treasury.keypair)


def test_bump_seed_canonicalization(chain):
    """The same seeds with a lower bump give another valid PDA; only the canonical one is accepted."""
    chain.deposit(amount=10 * USDC)
    job_id = uuid.uuid4().bytes
    _, canonical = Pubkey.find_program_address([b"job", job_id], chain.program_id)
    bump = next(b for b in range(canonical - 1, -1, -1) if _try_pda([b"job", job_id, bytes([b])], chain.program_id))
    non_canonical = Pubkey.create_program_address([b"job", job_id, bytes([bump])], chain.program_id)
    ix = replace_account(chain.lock_ix(job_id), index_of("lock_job", "job"), non_canonical)
    with raises_escrow(E.InvalidPda):
        chain.send(ix, chain.gateway)
    other = chain.clients[1]
    _, canonical = Pubkey.find_program_address([b"credits", bytes(other.pubkey)], chain.program_id)
    bump = next(
        b
        for b in range(canonical - 1, -1, -1)
        if _try_pda([b"credits", bytes(other.pubkey), bytes([b])], chain.program_id)
    )
    key = Pubkey.create_program_address([b"credits", bytes(other.pubkey), bytes([bump])], chain.program_id)
    ix = build_deposit(owner=other.pubkey, source=other.token, amount=USDC, program_id=chain.program_id)
    with raises_escrow(E.InvalidPda):
        chain.send(replace_account(ix, index_of("deposit", "credits"), key), other.keypair)


def _try_pda(seeds: list[bytes], program_id: Pubkey) -> bool:
    try:
        Pubkey.create_program_address(seeds, program_id)
        return True
    except Exception:  # on the curve: not a PDA
        return False


def test_pda_sharing_withdraw_from_someone_elses_credits(chain):
    victim = chain.client
    chain.deposit(victim, 10 * USDC)
    attacker = chain.clients[1]
    ix = build_withdraw(
        owner=attacker.pubkey, destination=attacker.token, amount=10 * USDC, program_id=chain.program_id
    )
    ix = replace_account(ix, index_of("withdraw", "credits"), pda.credits_address(victim.pubkey, chain.program_id))
    before = snapshot(chain)
    with raises_escrow(E.CreditsOwnerMismatch):
        chain.send(ix, attacker.keypair)
    ix = build_deposit(owner=attacker.pubkey, source=attacker.token, amount=USDC, program_id=chain.program_id)
    ix = replace_account(ix, index_of("deposit", "credits"), pda.credits_address(victim.pubkey, chain.program_id))
    with raises_escrow(E.CreditsOwnerMismatch):
        chain.send(ix, attacker.keypair)
    assert snapshot(chain) == before


def test_closing_accounts_job_ends_once(chain):
    chain.deposit(amount=10 * USDC)
    job_id = chain.lock(amount=2 * USDC)
    chain.settle(job_id, USDC)
    after = snapshot(chain)
    with raises_escrow(E.AccountOwnedByWrongProgram):
        chain.settle(job_id, USDC)
    with raises_escrow(E.AccountOwnedByWrongProgram):
        chain.refund(job_id)
    refunded = chain.lock(amount=2 * USDC)
    chain.refund(refunded)
    with raises_escrow(E.AccountOwnedByWrongProgram):
        chain.refund(refunded)
    with raises_escrow(E.AccountOwnedByWrongProgram):
        chain.settle(refunded, USDC)
    assert snapshot(chain) == after


def test_closing_accounts_revival_in_the_same_transaction(chain):
    """settle, refill the closed Job's lamports, settle again - all in one transaction."""
    chain.deposit(amount=10 * USDC)
    job_id = chain.lock(amount=2 * USDC)
    before = snapshot(chain)
    rent = chain.svm.get_balance(pda.job_address(job_id, chain.program_id))
    refill = transfer(
        TransferParams(
            from_pubkey=chain.gateway.pubkey(), to_pubkey=pda.job_address(job_id, chain.program_id), lamports=rent
        )
    )
    with raises_escrow(E.AccountOwnedByWrongProgram):
        chain.send(
            [chain.settle_ix(job_id, USDC), refill, chain.settle_ix(job_id, USDC)], chain.gateway, chain.worker.keypair
        )
    assert snapshot(chain) == before


def test_sysvar_address_checking_forged_clock_is_ignored(chain):
    """The clock comes from the syscall: a forged Clock account cannot expire a job early."""
    chain.deposit(amount=10 * USDC)
    job_id = chain.lock(amount=2 * USDC)
    forged = Keypair().pubkey()
    clock = struct.pack("<QqQQq", 10**9, 0, 10**6, 10**6, 2**62)
    chain.svm.set_account(
        forged, Account(10**9, clock, Pubkey.from_string("Sysvar1111111111111111111111111111111111111"), False)
    )
    ix = chain.refund_ix(job_id, authority=chain.client.pubkey)
    ix = Instruction(ix.program_id, bytes(ix.data), [*ix.accounts, AccountMeta(forged, False, False)])
    with raises_escrow(E.JobNotExpired):
        chain.send(ix, chain.client.keypair)


def test_program_data_of_another_program_is_refused(raw_genesis):
    g = raw_genesis
    ix = build_initialize(
        admin=g.admin.pubkey(),
        mint=g.mint,
        gateway=g.gateway.pubkey(),
        treasury=g.treasury.token,
        fee_bps=100,
        refund_timeout=60,
        program_id=g.program_id,
    )
    ix = replace_account(ix, index_of("initialize", "program_data"), pda.program_data_address(Keypair().pubkey()))
    with raises_escrow(E.InvalidProgramData):
        Chain(g).send(ix, g.admin)
    ix = replace_account(ix, index_of("initialize", "program"), TOKEN_PROGRAM_ID)
    with raises_escrow(E.InvalidProgramAccount):
        Chain(g).send(ix, g.admin)


# --------------------------------------------------------------------- escrow rules


def test_refund_rent_goes_only_to_the_stored_payer(chain):
    chain.deposit(amount=10 * USDC)
    job_id = chain.lock(amount=USDC)
    attacker = funded(chain)
    with raises_escrow(E.PayerMismatch):
        chain.refund(job_id, payer=attacker.pubkey())
    with raises_escrow(E.PayerMismatch):
        chain.settle(job_id, USDC, payer=attacker.pubkey())


def test_cost_above_locked_is_refused(chain):
    chain.deposit(amount=10 * USDC)
    job_id = chain.lock(amount=USDC)
    with raises_escrow(E.CostExceedsLocked):
        chain.settle(job_id, USDC + 1)


def test_withdraw_only_from_free_credits(chain):
    chain.deposit(amount=10 * USDC)
    chain.lock(amount=4 * USDC)
    with raises_escrow(E.InsufficientCredits, account=None):  # not a constraint: `occurred`
        chain.withdraw(amount=6 * USDC + 1)
    chain.withdraw(amount=6 * USDC)
    assert (chain.free(), chain.locked()) == (0, 4 * USDC)


def test_lock_only_from_free_credits(chain):
    chain.deposit(amount=3 * USDC)
    chain.lock(amount=2 * USDC)
    with raises_escrow(E.InsufficientCredits):
        chain.lock(amount=USDC + 1)


@pytest.mark.parametrize("action", ["deposit", "withdraw", "lock"])
def test_zero_amounts_are_refused(chain, action):
    chain.deposit(amount=USDC)
    with raises_escrow(E.ZeroAmount):
        {"deposit": chain.deposit, "withdraw": chain.withdraw, "lock": chain.lock}[action](amount=0)


def test_lock_refuses_nil_job_id_and_bad_workers(chain):
    chain.deposit(amount=USDC)
    with raises_escrow(E.InvalidJobId):
        chain.send(chain.lock_ix(bytes(16), 1), chain.gateway)
    for worker in (Pubkey.default(), chain.config_address, chain.vault):
        with raises_escrow(E.InvalidWorker):
            chain.lock(amount=1, worker=worker)


def test_config_values_are_range_checked(chain, raw_genesis):
    with raises_escrow(E.InvalidFeeBps):
        chain.send(
            build_update_config(admin=chain.admin.pubkey(), fee_bps=10_001, program_id=chain.program_id), chain.admin
        )
    for timeout in (0, -1, 30 * 24 * 3600 + 1):
        with raises_escrow(E.InvalidRefundTimeout):
            chain.send(
                build_update_config(admin=chain.admin.pubkey(), refund_timeout=timeout, program_id=chain.program_id),
                chain.admin,
            )
    g = raw_genesis
    ix = build_initialize(
        admin=g.admin.pubkey(),
        mint=g.mint,
        gateway=g.gateway.pubkey(),
        treasury=g.treasury.token,
        fee_bps=10_001,
        refund_timeout=60,
        program_id=g.program_id,
    )
    with raises_escrow(E.InvalidFeeBps):
        Chain(g).send(ix, g.admin)


def test_treasury_cannot_be_the_vault(chain):
    with raises_escrow(E.InvalidTreasury):
        chain.send(
            build_set_treasury(admin=chain.admin.pubkey(), treasury=chain.vault, program_id=chain.program_id),
            chain.admin,
        )


def test_treasury_cannot_be_a_token_account_of_the_config(chain, raw_genesis):
    """Fees paid to an account the Config PDA owns could be moved again by the program."""
    owned_by_config = create_token_account(chain.svm, funded(chain), chain.mint, chain.config_address)
    with raises_escrow(E.InvalidTreasury):
        chain.send(
            build_set_treasury(admin=chain.admin.pubkey(), treasury=owned_by_config, program_id=chain.program_id),
            chain.admin,
        )
    assert chain.config().treasury == chain.treasury.token
    g = raw_genesis
    config = pda.config_address(g.program_id)
    bad = create_token_account(g.svm, g.admin, g.mint, config)
    ix = build_initialize(
        admin=g.admin.pubkey(),
        mint=g.mint,
        gateway=g.gateway.pubkey(),
        treasury=bad,
        fee_bps=100,
        refund_timeout=60,
        program_id=g.program_id,
    )
    with raises_escrow(E.InvalidTreasury):
        Chain(g).send(ix, g.admin)


def test_gateway_must_be_a_key_that_can_sign(chain, raw_genesis):
    for key in (Pubkey.default(), chain.config_address, chain.vault):
        with raises_escrow(E.InvalidGateway):
            chain.send(
                build_update_config(admin=chain.admin.pubkey(), gateway=key, program_id=chain.program_id), chain.admin
            )
    assert chain.config().gateway == chain.gateway.pubkey()
    g = raw_genesis
    for key in (Pubkey.default(), pda.config_address(g.program_id), pda.vault_address(g.program_id)):
        ix = build_initialize(
            admin=g.admin.pubkey(),
            mint=g.mint,
            gateway=key,
            treasury=g.treasury.token,
            fee_bps=100,
            refund_timeout=60,
            program_id=g.program_id,
        )
        with raises_escrow(E.InvalidGateway):
            Chain(g).send(ix, g.admin)


def test_fee_rate_is_fixed_at_lock(chain):
    """An admin who raises fee_bps takes nothing from jobs already open."""
    chain.deposit(amount=10 * USDC)
    before = chain.lock(amount=USDC)  # at 250 bps
    chain.send(build_update_config(admin=chain.admin.pubkey(), fee_bps=5_000, program_id=chain.program_id), chain.admin)
    after = chain.lock(amount=USDC)  # at 5,000 bps
    assert (chain.job(before).fee_bps, chain.job(after).fee_bps) == (250, 5_000)
    chain.settle(before, USDC)
    assert (chain.balance(chain.worker.token), chain.balance(chain.treasury.token)) == (USDC - 25_000, 25_000)
    chain.settle(after, USDC)
    assert chain.balance(chain.treasury.token) == 25_000 + USDC // 2


def test_settlement_deadline_is_the_expiry(chain):
    """From expires_at on only a refund closes a Job: a late settlement cannot race the
    client's own refund."""
    chain.deposit(amount=10 * USDC)
    on_time, late = chain.lock(amount=USDC), chain.lock(amount=USDC)
    chain.warp(599)
    chain.settle(on_time, USDC // 2)  # one second before the deadline
    chain.warp(1)
    with raises_escrow(E.JobExpired):
        chain.settle(late, USDC // 2)
    assert chain.job(late).amount == USDC and chain.balance(chain.worker.token) == (USDC // 2) * 975 // 1000
    chain.refund(late, signer=chain.client.keypair)
    assert (chain.free(), chain.locked()) == (10 * USDC - USDC // 2, 0)


def test_lifecycle_nonce_never_repeats_for_a_job_address(chain):
    """A job id reused after its Job closed gets a new nonce, also within one transaction
    (lock, refund, lock) and also for another client: (client, nonce) names one lifecycle."""
    from decentral_chain.events import JobLocked, JobRefunded, parse_events

    other = chain.clients[1]
    chain.deposit(amount=10 * USDC)
    chain.deposit(other, amount=10 * USDC)
    job_id = chain.lock(amount=USDC)
    chain.settle(job_id, 1)
    meta = chain.send(
        [chain.lock_ix(job_id, USDC), chain.refund_ix(job_id), chain.lock_ix(job_id, USDC)], chain.gateway
    )
    events = [e for e in parse_events(meta.logs(), chain.program_id) if isinstance(e, JobLocked | JobRefunded)]
    assert [(type(e).__name__, e.nonce) for e in events] == [("JobLocked", 2), ("JobRefunded", 2), ("JobLocked", 3)]
    assert chain.job(job_id).nonce == 3
    chain.refund(job_id)
    chain.lock(amount=USDC, client=other, job_id=job_id)
    assert (chain.job(job_id).client, chain.job(job_id).nonce) == (other.pubkey, 1)
    assert chain.credits(chain.client.pubkey).locks == 3 and chain.credits(other.pubkey).locks == 1


def test_settlement_needs_the_bound_workers_own_signature(chain):
    """Paid only with the worker's consent: signed by another worker, or by the gateway alone
    (the worker's account present but not signing), a settlement fails by name."""
    chain.deposit(amount=10 * USDC)
    job_id = chain.lock(amount=2 * USDC)
    before = snapshot(chain)
    other = chain.workers[1]
    with raises_escrow(E.WorkerMismatch):
        chain.settle(job_id, USDC, worker=other.pubkey)  # co-signed by another worker
    unsigned = replace_account(
        chain.settle_ix(job_id, USDC), index_of("settle_job", "worker"), chain.worker.pubkey, is_signer=False
    )
    with raises_escrow(E.MissingSigner, account="worker"):
        chain.send(unsigned, chain.gateway)  # the gateway alone
    assert snapshot(chain) == before
    chain.settle(job_id, USDC)
    assert chain.balance(chain.worker.token) == USDC - 25_000


def test_a_workers_signature_cannot_be_moved_to_another_settlement(chain):
    """The worker signs the whole message: its signature on one job's settlement does not
    verify on another's, and a consent to lifecycle 1 of a job id cannot settle lifecycle 2."""
    from solders.message import Message
    from solders.transaction import VersionedTransaction

    chain.deposit(amount=10 * USDC)
    first, second = chain.lock(amount=USDC), chain.lock(amount=USDC)
    blockhash = chain.svm.latest_blockhash()
    signed = Message.new_with_blockhash([chain.settle_ix(first, USDC)], chain.gateway.pubkey(), blockhash)
    worker_signature = chain.worker.keypair.sign_message(bytes(signed))
    other = Message.new_with_blockhash([chain.settle_ix(second, USDC)], chain.gateway.pubkey(), blockhash)
    moved = VersionedTransaction.populate(other, [chain.gateway.sign_message(bytes(other)), worker_signature])
    result = chain.svm.send_transaction(moved)
    assert "SignatureFailure" in str(result.err())
    assert chain.job(second) is not None and chain.balance(chain.worker.token) == 0
    # a lifecycle reused: the id is refunded and locked again; the old consent names nonce 1
    chain.send([chain.refund_ix(first), chain.lock_ix(first, USDC)], chain.gateway)
    assert chain.job(first).nonce == 3  # the client's locks: first, second, first again
    with raises_escrow(E.LifecycleMismatch):
        chain.settle(first, USDC, nonce=1)
    chain.settle(first, USDC)
    assert chain.balance(chain.worker.token) == USDC - 25_000


def test_admin_handover_needs_the_proposed_key(chain):
    stranger = funded(chain)
    with raises_escrow(E.NoPendingAdmin):
        chain.send(build_accept_admin(new_admin=stranger.pubkey(), program_id=chain.program_id), stranger)
    chain.send(
        build_propose_admin(admin=chain.admin.pubkey(), new_admin=Keypair().pubkey(), program_id=chain.program_id),
        chain.admin,
    )
    with raises_escrow(E.NotPendingAdmin):
        chain.send(build_accept_admin(new_admin=stranger.pubkey(), program_id=chain.program_id), stranger)


def test_instruction_data_framing(chain):
    pid = chain.program_id
    payer = funded(chain)
    with raises_escrow(E.InstructionMissing):
        chain.send(Instruction(pid, b"\x01\x02\x03", []), payer)
    with raises_escrow(E.UnknownInstruction):
        chain.send(Instruction(pid, b"\xff" * 8, []), payer)
    good = build_deposit(owner=chain.client.pubkey, source=chain.client.token, amount=5, program_id=pid)
    for data in (bytes(good.data)[:-1], bytes(good.data) + b"\x00"):
        with raises_escrow(E.InvalidInstructionData):
            chain.send(Instruction(pid, data, list(good.accounts)), chain.client.keypair)
    upd = build_update_config(admin=chain.admin.pubkey(), fee_bps=5, program_id=pid)
    bad_tag = bytes(upd.data)[:8] + b"\x02" + bytes(upd.data)[9:]
    with raises_escrow(E.InvalidInstructionData):
        chain.send(Instruction(pid, bad_tag, list(upd.accounts)), chain.admin)
    bad_bool = bytes(build_update_config(admin=chain.admin.pubkey(), paused=True, program_id=pid).data)[:-1] + b"\x07"
    with raises_escrow(E.InvalidInstructionData):
        chain.send(Instruction(pid, bad_bool, list(upd.accounts)), chain.admin)


# ------------------------------------------------ generated: every account position


POSITIONS = [
    pytest.param(ix.name, i, flag, id=f"{ix.name}-{acc.name}-{flag}")
    for ix in INSTRUCTIONS
    for i, acc in enumerate(ix.accounts)
    for flag in ("signer", "writable")
    if getattr(acc, flag)
]


@pytest.mark.parametrize("name,index,flag", POSITIONS)
def test_account_position_requires_its_flag(chain, name, index, flag):
    ix, signers = valid_instructions(chain)[name]
    fee_payer = funded(chain)
    meta = ix.accounts[index]
    # the line names the first account of that key the instruction wants with this flag
    spec = next(i for i in INSTRUCTIONS if i.name == name).accounts
    culprit = next(
        spec[i].name for i, m in enumerate(ix.accounts) if m.pubkey == meta.pubkey and getattr(spec[i], flag)
    )
    if flag == "signer":
        ix = replace_account(ix, index, meta.pubkey, is_signer=False)
        # the key must not sign anywhere else in the instruction either
        signers = [s for s in signers if s.pubkey() != meta.pubkey]
        metas = [AccountMeta(m.pubkey, False, m.is_writable) if m.pubkey == meta.pubkey else m for m in ix.accounts]
        ix = Instruction(ix.program_id, bytes(ix.data), metas)
        expected = E.MissingSigner
    else:
        metas = [AccountMeta(m.pubkey, m.is_signer, False) if m.pubkey == meta.pubkey else m for m in ix.accounts]
        ix = Instruction(ix.program_id, bytes(ix.data), metas)
        expected = E.AccountNotWritable
    with raises_escrow(expected, account=culprit):
        chain.send(ix, fee_payer, *signers)


@pytest.mark.parametrize("name", [ix.name for ix in INSTRUCTIONS])
def test_missing_last_account_is_refused(chain, name):
    ix, signers = valid_instructions(chain)[name]
    short = Instruction(ix.program_id, bytes(ix.data), list(ix.accounts)[:-1])
    left = {meta.pubkey for meta in short.accounts}
    with raises_escrow(E.NotEnoughAccounts, account=None):  # no account to name
        chain.send(short, funded(chain), *(s for s in signers if s.pubkey() in left))
