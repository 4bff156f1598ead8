"""Codec properties: every builder round-trips through the decoder; accounts and events
decode what was encoded; events are taken only from the expected program's frames."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st
from solders.pubkey import Pubkey

from decentral_chain import abi
from decentral_chain.abi import INSTRUCTIONS, Option
from decentral_chain.accounts import Config, Credits, Job
from decentral_chain.errors import DecodeError
from decentral_chain.events import JobSettled, LogsTruncated, decode_event, parse_events
from decentral_chain.instructions import build_instruction, decode_instruction

pubkeys = st.binary(min_size=32, max_size=32).map(Pubkey.from_bytes)


def value_of(ty) -> st.SearchStrategy:
    if isinstance(ty, Option):
        return st.none() | value_of(ty.inner)
    if ty is abi.PUBKEY:
        return pubkeys
    if ty is abi.BOOL:
        return st.booleans()
    if ty.fmt is None:
        return st.binary(min_size=ty.size, max_size=ty.size)
    signed = ty.fmt.endswith("q")
    bits = ty.size * 8
    return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else st.integers(0, 2**bits - 1)


@st.composite
def instructions(draw):
    spec = draw(st.sampled_from(INSTRUCTIONS))
    args = {f.name: draw(value_of(f.type)) for f in spec.args}
    accounts = {a.name: draw(pubkeys) for a in spec.accounts}
    return spec, args, accounts


@given(instructions())
def test_build_then_decode_is_identity(case):
    spec, args, accounts = case
    ix = build_instruction(spec.name, accounts, args)
    decoded = decode_instruction(ix)
    assert decoded.name == spec.name
    assert dict(decoded.args) == args
    assert dict(decoded.accounts) == accounts
    assert [(m.is_signer, m.is_writable) for m in ix.accounts] == [(a.signer, a.writable) for a in spec.accounts]


@pytest.mark.parametrize("struct,cls", [(abi.CONFIG, Config), (abi.CREDITS, Credits), (abi.JOB, Job)])
def test_account_classes_mirror_the_abi(struct, cls):
    assert [f.name for f in dataclasses.fields(cls)] == [f.name for f in struct.fields]


@st.composite
def encoded(draw, struct):
    values = {f.name: draw(value_of(f.type)) for f in struct.fields}
    data = struct.discriminator + b"".join(f.type.encode(values[f.name]) for f in struct.fields)
    return values, data


@given(encoded(abi.JOB))
def test_job_account_round_trips(case):
    values, data = case
    assert Job.from_bytes(data) == Job(**values)


@given(encoded(abi.CONFIG))
def test_config_account_round_trips(case):
    values, data = case
    assert Config.from_bytes(data) == Config(**values)


def test_account_decoding_checks_length_and_discriminator():
    data = abi.CREDITS.discriminator + bytes(abi.CREDITS.size - 8)
    assert Credits.from_bytes(data).free == 0
    with pytest.raises(DecodeError, match="expected 88 bytes"):
        Credits.from_bytes(data + b"\0")
    with pytest.raises(DecodeError, match="discriminator"):
        Credits.from_bytes(abi.JOB.discriminator + data[8:])
    with pytest.raises(DecodeError, match="discriminator"):
        Config.from_bytes(bytes(abi.CONFIG.size))


SETTLED = next(s for s in abi.EVENTS if s.name == "JobSettled")


@given(encoded(SETTLED))
def test_event_round_trips(case):
    values, data = case
    assert decode_event(data) == JobSettled(**values)


def _logs(program: str, data: bytes, inner: str | None = None) -> list[str]:
    line = "Program data: " + base64.b64encode(data).decode()
    if inner is None:
        return [f"Program {program} invoke [1]", line, f"Program {program} success"]
    return [
        f"Program {program} invoke [1]",
        f"Program {inner} invoke [2]",
        line,
        f"Program {inner} success",
        f"Program {program} success",
    ]


def test_events_only_from_the_expected_programs_own_frames():
    data = SETTLED.discriminator + bytes(SETTLED.size - 8)
    ours, other = str(abi.PROGRAM_ID), str(Pubkey.new_unique())
    assert len(parse_events(_logs(ours, data))) == 1
    assert parse_events(_logs(other, data)) == []  # byte-identical data from another program
    assert parse_events(_logs(ours, data, inner=other)) == []  # logged inside a CPI to another program
    assert len(parse_events(_logs(other, data, inner=ours))) == 1  # our program invoked by another


def test_truncated_logs_are_reported():
    data = SETTLED.discriminator + bytes(SETTLED.size - 8)
    with pytest.raises(LogsTruncated):
        parse_events([*_logs(str(abi.PROGRAM_ID), data)[:2], "Log truncated"])
