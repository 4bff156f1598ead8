"""Program-derived addresses of the escrow (seeds in decentral_chain.abi)."""

from __future__ import annotations

import functools
import uuid

from solders.pubkey import Pubkey

from decentral_chain.abi import (
    BPF_LOADER_UPGRADEABLE_ID,
    PROGRAM_ID,
    SEED_CONFIG,
    SEED_CREDITS,
    SEED_JOB,
    SEED_VAULT,
    TOKEN_PROGRAM_ID,
)

ASSOCIATED_TOKEN_PROGRAM_ID = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")


@functools.cache  # derivations are pure and cost 10–60 µs each
def config_address(program_id: Pubkey = PROGRAM_ID) -> Pubkey:
    return Pubkey.find_program_address([SEED_CONFIG], program_id)[0]


@functools.cache
def vault_address(program_id: Pubkey = PROGRAM_ID) -> Pubkey:
    return Pubkey.find_program_address([SEED_VAULT], program_id)[0]


@functools.lru_cache(maxsize=65536)  # one per client: a gateway derives it for every job
def credits_address(owner: Pubkey, program_id: Pubkey = PROGRAM_ID) -> Pubkey:
    return Pubkey.find_program_address([SEED_CREDITS, bytes(owner)], program_id)[0]


@functools.lru_cache(maxsize=65536)
def associated_token_address(owner: Pubkey, mint: Pubkey, token_program: Pubkey = TOKEN_PROGRAM_ID) -> Pubkey:
    """The owner's associated token account of ``mint`` (as spl-associated-token-account)."""
    return Pubkey.find_program_address([bytes(owner), bytes(token_program), bytes(mint)], ASSOCIATED_TOKEN_PROGRAM_ID)[
        0
    ]


def job_address(job_id: bytes, program_id: Pubkey = PROGRAM_ID) -> Pubkey:
    if len(job_id) != 16:
        raise ValueError("job_id must be 16 bytes")
    return Pubkey.find_program_address([SEED_JOB, bytes(job_id)], program_id)[0]


def new_job_id(program_id: Pubkey = PROGRAM_ID) -> bytes:
    """A random UUIDv4 whose Job PDA has the canonical bump 255.

    The program accepts any job id and enforces the canonical bump with
    find_program_address, which costs 1,500 CU per bump tried. Drawing ids whose first
    try succeeds (about two draws, here, off chain) makes every lock_job cost the same.
    """
    while True:
        job_id = uuid.uuid4().bytes
        if Pubkey.find_program_address([SEED_JOB, job_id], program_id)[1] == 255:
            return job_id


def program_data_address(program_id: Pubkey = PROGRAM_ID) -> Pubkey:
    return Pubkey.find_program_address([bytes(program_id)], BPF_LOADER_UPGRADEABLE_ID)[0]
