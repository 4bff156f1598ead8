"""Program-derived addresses of the escrow (seeds in decentral_chain.abi)."""

from __future__ import annotations

from solders.pubkey import Pubkey

from decentral_chain.abi import (
    BPF_LOADER_UPGRADEABLE_ID,
    PROGRAM_ID,
    SEED_CONFIG,
    SEED_CREDITS,
    SEED_JOB,
    SEED_VAULT,
)


def config_address(program_id: Pubkey = PROGRAM_ID) -> Pubkey:
    return Pubkey.find_program_address([SEED_CONFIG], program_id)[0]


def vault_address(program_id: Pubkey = PROGRAM_ID) -> Pubkey:
    return Pubkey.find_program_address([SEED_VAULT], program_id)[0]


def credits_address(owner: Pubkey, program_id: Pubkey = PROGRAM_ID) -> Pubkey:
    return Pubkey.find_program_address([SEED_CREDITS, bytes(owner)], program_id)[0]


def job_address(job_id: bytes, program_id: Pubkey = PROGRAM_ID) -> Pubkey:
    if len(job_id) != 16:
        raise ValueError("job_id must be 16 bytes")
    return Pubkey.find_program_address([SEED_JOB, bytes(job_id)], program_id)[0]


def program_data_address(program_id: Pubkey = PROGRAM_ID) -> Pubkey:
    return Pubkey.find_program_address([bytes(program_id)], BPF_LOADER_UPGRADEABLE_ID)[0]
