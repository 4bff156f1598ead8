"""The IDLs against anchorpy 0.21 and against the running program.

anchorpy builds its own coders from our legacy IDL: every instruction it encodes must be
byte-identical to our builders (data and account metas), and it must decode our accounts
and events. Then every discriminator, account size and error code of the IDL is shown to
be the program's own, by running the program.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import uuid

import pytest
from anchorpy import Context, Idl, Program, Provider, Wallet
from anchorpy.program.event import EventParser
from solana.rpc.async_api import AsyncClient
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from decentral_chain import abi, codegen, pda
from decentral_chain.errors import EscrowError, ProgramError
from decentral_chain.instructions import (
    build_accept_admin,
    build_deposit,
    build_initialize,
    build_lock_job,
    build_propose_admin,
    build_refund_job,
    build_set_treasury,
    build_settle_job,
    build_update_config,
    build_withdraw,
)
from decentral_chain.localnet.genesis import USDC
from tests.conftest import raises_escrow


@pytest.fixture(scope="module")
def anchor_program() -> Program:
    idl = Idl.from_json(codegen.IDL_LEGACY.read_text())
    provider = Provider(AsyncClient("http://127.0.0.1:1"), Wallet(Keypair()))  # never contacted
    return Program(idl, abi.PROGRAM_ID, provider)


def _keys(n: int) -> list[Pubkey]:
    return [Keypair().pubkey() for _ in range(n)]


def _cases() -> list[tuple[str, list, Instruction]]:
    """(name, anchorpy positional args, our instruction) for every instruction."""
    a, b, c, d, e = _keys(5)
    job_id = uuid.uuid4().bytes
    digest = hashlib.sha256(b"r").digest()
    return [
        (
            "initialize",
            [250, 600],
            build_initialize(admin=a, mint=b, gateway=c, treasury=d, fee_bps=250, refund_timeout=600),
        ),
        ("deposit", [7], build_deposit(owner=a, source=b, amount=7)),
        ("withdraw", [2**64 - 1], build_withdraw(owner=a, destination=b, amount=2**64 - 1)),
        ("lock_job", [list(job_id), 5, c], build_lock_job(gateway=a, client=b, job_id=job_id, amount=5, worker=c)),
        (
            "settle_job",
            [3, list(digest), 10, 20, 7],
            build_settle_job(
                gateway=a,
                client=b,
                job_id=job_id,
                worker_token=c,
                treasury=d,
                payer=e,
                cost=3,
                result_hash=digest,
                prompt_tokens=10,
                completion_tokens=20,
                worker=a,
                nonce=7,
            ),
        ),
        ("refund_job", [], build_refund_job(authority=a, client=b, job_id=job_id, payer=c)),
        ("update_config", [None, 60, a, True], build_update_config(admin=b, refund_timeout=60, gateway=a, paused=True)),
        ("update_config", [7, None, None, None], build_update_config(admin=b, fee_bps=7)),
        ("set_treasury", [], build_set_treasury(admin=a, treasury=b)),
        ("propose_admin", [c], build_propose_admin(admin=a, new_admin=c)),
        ("accept_admin", [], build_accept_admin(new_admin=a)),
    ]


@pytest.mark.parametrize("name,args,ours", _cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_anchorpy_encodes_every_instruction_like_our_builders(anchor_program, name, args, ours):
    spec = abi.INSTRUCTIONS_BY_NAME[name]
    accounts = {acc.name: meta.pubkey for acc, meta in zip(spec.accounts, ours.accounts, strict=True)}
    theirs = anchor_program.instruction[name](*args, ctx=Context(accounts=accounts))
    assert bytes(theirs.data) == bytes(ours.data)
    assert list(theirs.accounts) == list(ours.accounts)
    assert theirs.program_id == ours.program_id


def test_anchorpy_decodes_our_accounts_and_events(anchor_program, chain):
    chain.deposit(amount=5 * USDC)
    job_id = chain.lock(amount=2 * USDC)
    coder = anchor_program.coder.accounts
    cfg = coder.decode(bytes(chain.svm.get_account(chain.config_address).data))
    assert cfg.gateway == chain.gateway.pubkey() and cfg.fee_bps == 250 and cfg.vault == chain.vault
    credits = coder.decode(
        bytes(chain.svm.get_account(pda.credits_address(chain.client.pubkey, chain.program_id)).data)
    )
    assert (credits.owner, credits.free, credits.locked, credits.open_jobs) == (
        chain.client.pubkey,
        3 * USDC,
        2 * USDC,
        1,
    )
    job = coder.decode(bytes(chain.svm.get_account(pda.job_address(job_id, chain.program_id)).data))
    assert bytes(job.job_id) == job_id and job.worker == chain.worker.pubkey and job.amount == 2 * USDC

    meta = chain.settle(job_id, USDC, result=b"ok")
    events = []
    EventParser(chain.program_id, anchor_program.coder).parse_logs(meta.logs(), events.append)
    assert [e.name for e in events] == ["JobSettled"]
    settled = events[0].data
    assert (settled.cost, settled.fee, settled.refunded) == (USDC, 25_000, USDC)
    assert bytes(settled.result_hash) == hashlib.sha256(b"ok").digest()
    assert (settled.prompt_tokens, settled.completion_tokens) == (11, 22)


def test_both_idls_agree_with_the_abi():
    legacy = json.loads(codegen.IDL_LEGACY.read_text())
    v30 = json.loads(codegen.IDL_ANCHOR30.read_text())
    assert legacy["metadata"]["address"] == v30["address"] == str(abi.PROGRAM_ID)
    for ix_l, ix_30 in zip(legacy["instructions"], v30["instructions"], strict=True):
        assert codegen.camel(ix_30["name"]) == ix_l["name"]
        assert bytes(ix_30["discriminator"]) == hashlib.sha256(f"global:{ix_30['name']}".encode()).digest()[:8]
        assert [a["name"] for a in ix_30["accounts"]] == [
            re.sub(r"([A-Z])", r"_\1", a["name"]).lower() for a in ix_l["accounts"]
        ]
        assert [bool(a.get("writable")) for a in ix_30["accounts"]] == [a["isMut"] for a in ix_l["accounts"]]
        assert [bool(a.get("signer")) for a in ix_30["accounts"]] == [a["isSigner"] for a in ix_l["accounts"]]
    for kind in ("accounts", "events"):
        for item in v30[kind]:
            ns = "account" if kind == "accounts" else "event"
            assert bytes(item["discriminator"]) == hashlib.sha256(f"{ns}:{item['name']}".encode()).digest()[:8]
    assert legacy["errors"] == v30["errors"]
    assert [e["code"] for e in legacy["errors"]] == list(range(6000, 6000 + len(abi.ERRORS)))


# ------------------------------------------------------- the IDL is the program's own


def test_every_idl_instruction_discriminator_dispatches(chain):
    """With no accounts, a known discriminator reaches its parser (NotEnoughAccounts);
    anything else is UnknownInstruction."""
    v30 = json.loads(codegen.IDL_ANCHOR30.read_text())
    payer = chain.admin
    for ix in v30["instructions"]:
        with raises_escrow(EscrowError.NotEnoughAccounts):
            chain.send(Instruction(chain.program_id, bytes(ix["discriminator"]), []), payer)
    with raises_escrow(EscrowError.UnknownInstruction):
        chain.send(Instruction(chain.program_id, hashlib.sha256(b"global:steal").digest()[:8], []), payer)


def test_idl_account_discriminators_and_sizes_are_what_the_program_writes(chain):
    chain.deposit(amount=USDC)
    job_id = chain.lock(amount=USDC)
    v30 = json.loads(codegen.IDL_ANCHOR30.read_text())
    written = {
        "Config": bytes(chain.svm.get_account(chain.config_address).data),
        "Credits": bytes(chain.svm.get_account(pda.credits_address(chain.client.pubkey, chain.program_id)).data),
        "Job": bytes(chain.svm.get_account(pda.job_address(job_id, chain.program_id)).data),
    }
    sizes = {"Config": 264, "Credits": 88, "Job": 160}
    for item in v30["accounts"]:
        data = written[item["name"]]
        assert data[:8] == bytes(item["discriminator"])
        assert len(data) == sizes[item["name"]] == next(s.size for s in abi.ACCOUNTS if s.name == item["name"])


def test_idl_error_codes_are_the_programs(chain):
    """The C enum (compiled into the program) carries the IDL's codes, and running the
    program yields them by name."""
    header = codegen.ABI_HEADER.read_text()
    c_codes = {m[0]: int(m[1]) for m in re.findall(r"ERR_([A-Z0-9_]+) = (\d+),", header)}
    idl = json.loads(codegen.IDL_LEGACY.read_text())
    assert {codegen.upper_snake(e["name"]): e["code"] for e in idl["errors"]} == c_codes
    with pytest.raises(ProgramError) as info:
        chain.withdraw(amount=1)  # no Credits yet
    assert info.value.code == next(e["code"] for e in idl["errors"] if e["name"] == "AccountOwnedByWrongProgram")


def test_generated_files_are_up_to_date():
    assert codegen.stale() == [], "run `python -m decentral_chain.codegen`"


def test_constraint_tables_check_types_before_constraints_read_data():
    """Every instruction's Check table: program addresses, then types, then constraints, so
    no constraint reads data whose owner, size and discriminator are unchecked."""
    for ix in abi.INSTRUCTIONS:
        ops = [row.split(",")[0].lstrip("{") for row in codegen._check_rows(ix)]
        n_types = sum(a.type is not None for a in ix.accounts)
        n_addresses = sum(a.address is not None for a in ix.accounts)
        assert ops[n_addresses : n_addresses + n_types] == ["CHECK_TYPE"] * n_types, ix.name
        assert "CHECK_TYPE" not in ops[n_addresses + n_types :], ix.name
        assert len(ops) == n_addresses + n_types + sum(len(a.constraints) for a in ix.accounts)


@pytest.mark.parametrize(
    ("constraint", "message"),
    [
        ("nobody.key == config.vault @ VaultMismatch", "unknown account"),
        ("vault.key == source.mint @ VaultMismatch", "without a type"),  # source has no type here
        ("vault.key == config.fee_bps @ VaultMismatch", "not a pubkey field"),
        ("vault.key == config.vault @ NoSuchError", "cannot read"),
        ("vault.key = config.vault @ VaultMismatch", "cannot read"),
        ("!config.vault @ ProgramPaused", "not a bool field"),
        ("!vault.key @ ProgramPaused", "not a flag"),
    ],
)
def test_constraint_compiler_rejects_what_it_cannot_enforce(constraint, message):
    deposit = abi.INSTRUCTIONS_BY_NAME["deposit"]
    accounts = tuple(
        dataclasses.replace(a, constraints=(constraint,))
        if a.name == "vault"
        else dataclasses.replace(a, type=None, constraints=())
        if a.name == "source"
        else a
        for a in deposit.accounts
    )
    with pytest.raises(ValueError, match=message):
        codegen._check_rows(dataclasses.replace(deposit, accounts=accounts))


def test_discriminators_follow_anchors_rule():
    assert abi.INSTRUCTIONS_BY_NAME["lock_job"].discriminator == hashlib.sha256(b"global:lock_job").digest()[:8]
    assert abi.CONFIG.discriminator == hashlib.sha256(b"account:Config").digest()[:8]
    header = codegen.ABI_HEADER.read_text()
    for ix in abi.INSTRUCTIONS:
        value = int(re.search(rf"#define IX_{ix.name.upper()} 0x([0-9a-f]+)ULL", header).group(1), 16)
        assert value.to_bytes(8, "little") == hashlib.sha256(f"global:{ix.name}".encode()).digest()[:8]
    for s in (*abi.ACCOUNTS, *abi.EVENTS):
        prefix = "ACCOUNT" if s.namespace == "account" else "EVENT"
        value = int(re.search(rf"#define {prefix}_{codegen.upper_snake(s.name)} 0x([0-9a-f]+)ULL", header).group(1), 16)
        assert value.to_bytes(8, "little") == hashlib.sha256(f"{s.namespace}:{s.name}".encode()).digest()[:8]


def test_program_id_matches_the_committed_keypair():
    secret = json.loads((codegen.ROOT / "localnet" / "decentral_escrow-keypair.json").read_text())
    assert Keypair.from_bytes(bytes(secret)).pubkey() == abi.PROGRAM_ID
    assert str(abi.PROGRAM_ID) in (codegen.ROOT / "Anchor.toml").read_text()
