"""The few SPL Token and Associated Token Account instructions the localnet's genesis uses,
built here from their wire layouts (solana-py's ``spl`` builders changed shape between
releases; these are the programs' own formats and do not).

    InitializeMint2  tag 20 | decimals u8 | mint_authority [32] | freeze COption<[32]>
    MintTo           tag 7  | amount u64
    SetAuthority     tag 6  | authority_type u8 | new COption<[32]>
    ATA CreateIdempotent: data [1]; accounts payer, ata, owner, mint, system, token
"""

from __future__ import annotations

import struct

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

from decentral_chain.abi import SYSTEM_PROGRAM_ID, TOKEN_PROGRAM_ID
from decentral_chain.pda import ASSOCIATED_TOKEN_PROGRAM_ID, associated_token_address

ACCOUNT_OWNER = 2  # SetAuthority's AuthorityType::AccountOwner


def initialize_mint2(mint: Pubkey, decimals: int, authority: Pubkey, token_program: Pubkey = TOKEN_PROGRAM_ID):
    data = struct.pack("<BB", 20, decimals) + bytes(authority) + b"\x00"  # no freeze authority
    return Instruction(token_program, data, [AccountMeta(mint, False, True)])


def mint_to(
    mint: Pubkey, destination: Pubkey, authority: Pubkey, amount: int, token_program: Pubkey = TOKEN_PROGRAM_ID
) -> Instruction:
    return Instruction(
        token_program,
        struct.pack("<BQ", 7, amount),
        [AccountMeta(mint, False, True), AccountMeta(destination, False, True), AccountMeta(authority, True, False)],
    )


def set_owner(account: Pubkey, owner: Pubkey, new_owner: Pubkey, token_program: Pubkey = TOKEN_PROGRAM_ID):
    data = struct.pack("<BBB", 6, ACCOUNT_OWNER, 1) + bytes(new_owner)
    return Instruction(token_program, data, [AccountMeta(account, False, True), AccountMeta(owner, True, False)])


def create_associated_token_account(
    payer: Pubkey, owner: Pubkey, mint: Pubkey, token_program: Pubkey = TOKEN_PROGRAM_ID
) -> Instruction:
    """Idempotent: succeeds when the account already exists."""
    ata = associated_token_address(owner, mint, token_program)
    return Instruction(
        ASSOCIATED_TOKEN_PROGRAM_ID,
        b"\x01",
        [
            AccountMeta(payer, True, True),
            AccountMeta(ata, False, True),
            AccountMeta(owner, False, False),
            AccountMeta(mint, False, False),
            AccountMeta(SYSTEM_PROGRAM_ID, False, False),
            AccountMeta(token_program, False, False),
        ],
    )
