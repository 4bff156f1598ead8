"""In-process SVM helpers: deploy the escrow, drive the real SPL Token program, send.

This is the one place where LiteSVM's failure values become exceptions: a failed
transaction raises :class:`~decentral_chain.errors.ProgramError` for the escrow's custom
codes and :class:`~decentral_chain.errors.TransactionFailed` for anything else.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from solders.account import Account
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata

from decentral_chain.abi import BPF_LOADER_UPGRADEABLE_ID, MINT_LEN, TOKEN_PROGRAM_ID
from decentral_chain.errors import TransactionFailed, transaction_error
from decentral_chain.localnet import spl
from decentral_chain.pda import associated_token_address, program_data_address

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MMAP_THRESHOLD = 8 << 20
TRIM_THRESHOLD = 64 << 20


def tune_allocator() -> bool:
    """Keep the SVM's per-invocation allocations (the VM's stack and heap regions, ~300 KiB)
    on the heap instead of fresh mmaps: with glibc's default, sliding threshold a
    transaction that invokes a program twice (a settlement's two token transfers) pays page
    faults for each invocation — measured 0.6 ms for two token transfers, 0.24 ms with this.
    Process-wide, so only a process serving a localnet calls it. False where it does not apply
    (not glibc)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


# UpgradeableLoaderState tags (bincode u32).
_LOADER_PROGRAM = 2
_LOADER_PROGRAM_DATA = 3


def deploy_upgradeable(svm: LiteSVM, program_id: Pubkey, elf: bytes, authority: Pubkey | None, slot: int = 0) -> None:
    """Write the Program and ProgramData accounts exactly as the upgradeable loader does
    (``authority`` None: immutable; the 45-byte metadata keeps its size either way)."""
    programdata = program_data_address(program_id)
    option = b"\x01" + bytes(authority) if authority is not None else b"\x00" * 33
    pd = struct.pack("<IQ", _LOADER_PROGRAM_DATA, slot) + option + elf
    svm.set_account(
        programdata, Account(svm.minimum_balance_for_rent_exemption(len(pd)), pd, BPF_LOADER_UPGRADEABLE_ID, False)
    )
    prog = struct.pack("<I", _LOADER_PROGRAM) + bytes(programdata)
    svm.set_account(
        program_id, Account(svm.minimum_balance_for_rent_exemption(len(prog)), prog, BPF_LOADER_UPGRADEABLE_ID, True)
    )


def send(
    svm: LiteSVM, instructions: Sequence[Instruction], payer: Keypair, signers: Sequence[Keypair] = ()
) -> TransactionMetadata:
    """Sign with payer + signers, send, and raise on failure."""
    keys = {payer.pubkey(): payer}
    for s in signers:
        keys.setdefault(s.pubkey(), s)
    msg = Message.new_with_blockhash(list(instructions), payer.pubkey(), svm.latest_blockhash())
    tx = VersionedTransaction(msg, list(keys.values()))
    result = svm.send_transaction(tx)
    if isinstance(result, FailedTransactionMetadata):
        raise failure_to_error(result, str(tx.signatures[0]))
    return result


def failure_to_error(result: FailedTransactionMetadata, signature: str | None = None) -> TransactionFailed:
    """A failed LiteSVM transaction as the RPC would report it (the error in its JSON form)."""
    from decentral_chain.localnet.encoding import tx_error_json

    return transaction_error(tx_error_json(result.err()), list(result.meta().logs()), signature)


def create_mint(
    svm: LiteSVM,
    payer: Keypair,
    authority: Pubkey,
    decimals: int = 6,
    mint: Keypair | None = None,
    token_program: Pubkey = TOKEN_PROGRAM_ID,
) -> Pubkey:
    mint = mint or Keypair()
    rent = svm.minimum_balance_for_rent_exemption(MINT_LEN)
    send(
        svm,
        [
            create_account(
                CreateAccountParams(
                    from_pubkey=payer.pubkey(),
                    to_pubkey=mint.pubkey(),
                    lamports=rent,
                    space=MINT_LEN,
                    owner=token_program,
                )
            ),
            spl.initialize_mint2(mint.pubkey(), decimals, authority, token_program),
        ],
        payer,
        [mint],
    )
    return mint.pubkey()


def create_token_account(
    svm: LiteSVM, payer: Keypair, mint: Pubkey, owner: Pubkey, token_program: Pubkey = TOKEN_PROGRAM_ID
) -> Pubkey:
    """The owner's associated token account of the mint (created if missing)."""
    ata = associated_token_address(owner, mint, token_program)
    if svm.get_account(ata) is None:
        send(svm, [spl.create_associated_token_account(payer.pubkey(), owner, mint, token_program)], payer)
    return ata


def mint_to(
    svm: LiteSVM,
    mint: Pubkey,
    destination: Pubkey,
    amount: int,
    authority: Keypair,
    token_program: Pubkey = TOKEN_PROGRAM_ID,
) -> None:
    send(
        svm,
        [spl.mint_to(mint, destination, authority.pubkey(), amount, token_program)],
        authority,
    )


def token_balance(svm: LiteSVM, account: Pubkey) -> int:
    acc = svm.get_account(account)
    if acc is None:
        return 0
    return struct.unpack_from("<Q", bytes(acc.data), 64)[0]
