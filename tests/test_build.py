"""The build is reproducible and the CLI reports what it built."""

from __future__ import annotations

import hashlib
import json

from click.testing import CliRunner

from decentral_chain.cli import cli
from decentral_chain.sbpf.build import DEPLOY_PATH, build


def test_two_builds_are_byte_identical(tmp_path):
    first = build(tmp_path / "a.so")
    second = build(tmp_path / "b.so")
    assert first.program.elf == second.program.elf
    assert (tmp_path / "a.so").read_bytes() == (tmp_path / "b.so").read_bytes()
    assert first.sha256 == hashlib.sha256(first.program.elf).hexdigest()


def test_program_build_command_prints_size_and_sha256():
    result = CliRunner().invoke(cli, ["program", "build", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    data = DEPLOY_PATH.read_bytes()
    assert info["size"] == len(data)
    assert info["sha256"] == hashlib.sha256(data).hexdigest()
    assert info["path"] == "target/deploy/decentral_escrow.so"
    assert info["regenerated"] == []
    plain = CliRunner().invoke(cli, ["program", "build"])
    assert plain.exit_code == 0 and info["sha256"] in plain.output


def test_program_idl_command_prints_both_formats():
    legacy = json.loads(CliRunner().invoke(cli, ["program", "idl"]).output)
    v30 = json.loads(CliRunner().invoke(cli, ["program", "idl", "--format", "anchor-0.30"]).output)
    assert legacy["name"] == v30["metadata"]["name"] == "decentral_escrow"
    bad = CliRunner().invoke(cli, ["program", "idl", "--format", "yaml"])
    assert bad.exit_code == 2
