"""Instruction-data fuzz for every instruction: random, truncated and oversized data.

Truncated and oversized data must fail with the framing errors; random argument bytes of
the right length may succeed only if they decode as the ABI says. In every case the
vault still equals Σ free + Σ locked, and a failure moves no base unit.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from solders.instruction import Instruction

from decentral_chain.abi import INSTRUCTIONS, INSTRUCTIONS_BY_NAME
from decentral_chain.errors import DecodeError, EscrowError, ProgramError, TransactionFailed
from decentral_chain.instructions import decode_args
from decentral_chain.localnet.genesis import build_genesis
from tests.conftest import Chain, valid_instructions

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


def state(chain: Chain) -> tuple[int, ...]:
    parties = [*chain.clients, *chain.workers, chain.treasury]
    return (
        chain.balance(chain.vault),
        *(chain.balance(p.token) for p in parties),
        *(chain.free(c) for c in chain.clients),
        *(chain.locked(c) for c in chain.clients),
    )


def assert_vault_backs_credits(chain: Chain) -> None:
    total = sum(chain.free(c) + chain.locked(c) for c in chain.clients)
    assert chain.balance(chain.vault) == total


def run(chain: Chain, base: Instruction, signers, data: bytes) -> ProgramError | TransactionFailed | None:
    ix = Instruction(base.program_id, data, list(base.accounts))
    before = state(chain)
    try:
        chain.send(ix, signers[0], *signers[1:])
    except TransactionFailed as exc:
        assert state(chain) == before, "a failed transaction moved funds"
        assert_vault_backs_credits(chain)
        return exc
    assert_vault_backs_credits(chain)
    return None


@pytest.fixture(scope="module")
def fuzz_chain(program_elf):
    chain = Chain(build_genesis(program_elf, clients=2))
    return chain, valid_instructions(chain)


@pytest.mark.parametrize("name", [ix.name for ix in INSTRUCTIONS])
def test_truncated_data_is_refused(fuzz_chain, name):
    chain, valid = fuzz_chain
    base, signers = valid[name]
    data = bytes(base.data)

    @FUZZ
    @given(cut=st.integers(0, len(data) - 1))
    def check(cut):
        err = run(chain, base, signers, data[:cut])
        expected = EscrowError.InstructionMissing if cut < 8 else EscrowError.InvalidInstructionData
        assert isinstance(err, ProgramError) and err.error == expected

    check()


@pytest.mark.parametrize("name", [ix.name for ix in INSTRUCTIONS])
def test_oversized_data_is_refused(fuzz_chain, name):
    chain, valid = fuzz_chain
    base, signers = valid[name]

    @FUZZ
    @given(extra=st.binary(min_size=1, max_size=64))
    def check(extra):
        err = run(chain, base, signers, bytes(base.data) + extra)
        assert isinstance(err, ProgramError) and err.error == EscrowError.InvalidInstructionData

    check()


@pytest.mark.parametrize("name", [ix.name for ix in INSTRUCTIONS])
def test_random_arguments_succeed_only_when_they_decode(fuzz_chain, name):
    chain, valid = fuzz_chain
    base, signers = valid[name]
    spec = INSTRUCTIONS_BY_NAME[name]
    size = len(bytes(base.data)) - 8

    @FUZZ
    @given(args=st.binary(min_size=size, max_size=size))
    def check(args):
        err = run(chain, base, signers, spec.discriminator + args)
        try:
            decode_args(spec.args, args)
        except DecodeError:
            assert isinstance(err, ProgramError) and err.error == EscrowError.InvalidInstructionData

    check()


def test_random_bytes_never_succeed(fuzz_chain):
    chain, valid = fuzz_chain
    base, signers = valid["deposit"]
    known = {ix.discriminator for ix in INSTRUCTIONS}

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.binary(max_size=120))
    def check(data):
        err = run(chain, base, signers, data)
        if data[:8] not in known:
            expected = EscrowError.InstructionMissing if len(data) < 8 else EscrowError.UnknownInstruction
            assert isinstance(err, ProgramError) and err.error == expected

    check()
