"""Programs and accounts added to genesis, as ``solana-test-validator`` spells the flags:

    --bpf-program ADDRESS_OR_KEYPAIR SBF_PROGRAM.SO              (BPF loader 2, not upgradeable)
    --upgradeable-program ADDRESS_OR_KEYPAIR SBF_PROGRAM.SO UPGRADE_AUTHORITY   (a pubkey, a
                                                                  keypair file, or "none")
    --account ADDRESS JSON_FILE     the ``solana account --output json`` format; ADDRESS "-"
                                    takes the file's own ``pubkey``

Each is checked before anything is served: a bad address, file or JSON is one line naming it.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from solders.account import Account
from solders.pubkey import Pubkey

from decentral_chain.localnet.chain import LocalChain
from decentral_chain.localnet.keys import read_keypair
from decentral_chain.localnet.svm import deploy_upgradeable
from decentral_chain.pda import program_data_address


class ExtraError(ValueError):
    """A flag's argument is not what it must be (the message names it)."""


def address_or_keypair(value: str, what: str) -> Pubkey:
    path = Path(value)
    if path.is_file():
        try:
            return read_keypair(path).pubkey()
        except ValueError as exc:
            raise ExtraError(f"{what}: {value} is not a keypair file ({exc})") from None
    try:
        return Pubkey.from_string(value)
    except ValueError:
        raise ExtraError(f"{what}: {value!r} is neither a base-58 address nor a keypair file") from None


def _elf(path: str, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ExtraError(f"{what}: cannot read {path} ({exc.strerror})") from None
    if not data.startswith(b"\x7fELF"):
        raise ExtraError(f"{what}: {path} is not an ELF program")
    return data


@dataclass
class Extras:
    programs: list[tuple[Pubkey, bytes]]
    upgradeable: list[tuple[Pubkey, bytes, Pubkey | None]]
    accounts: list[tuple[Pubkey, Account]]

    @classmethod
    def parse(
        cls,
        bpf_programs: tuple[tuple[str, str], ...] = (),
        upgradeable_programs: tuple[tuple[str, str, str], ...] = (),
        accounts: tuple[tuple[str, str], ...] = (),
    ) -> Extras:
        programs = [(address_or_keypair(a, "--bpf-program"), _elf(so, "--bpf-program")) for a, so in bpf_programs]
        upgradeable = [
            (
                address_or_keypair(a, "--upgradeable-program"),
                _elf(so, "--upgradeable-program"),
                None if auth == "none" else address_or_keypair(auth, "--upgradeable-program authority"),
            )
            for a, so, auth in upgradeable_programs
        ]
        return cls(programs, upgradeable, [read_account_json(a, f) for a, f in accounts])

    def apply(self, chain: LocalChain) -> None:
        """Write them into the chain as genesis accounts (surfnet_resetAccount restores them)."""
        with chain.lock:
            for key, elf in self.programs:
                chain.svm.add_program(key, elf)
                chain.known.add(key)
            for key, elf, authority in self.upgradeable:
                deploy_upgradeable(chain.svm, key, elf, authority)
                chain.known.update((key, program_data_address(key)))
            for key, account in self.accounts:
                chain.set_account(key, account)
            chain.snapshot_genesis()


def read_account_json(address: str, path: str) -> tuple[Pubkey, Account]:
    """An account from ``solana account --output json`` (data as [base64, "base64"])."""
    what = f"--account {address} {path}"
    try:
        doc = json.loads(Path(path).read_text())
        body = doc["account"]
        data, encoding = body["data"]
        if encoding != "base64":
            raise ExtraError(f"{what}: data must be base64-encoded (solana account --output json)")
        account = Account(
            int(body["lamports"]),
            base64.b64decode(data, validate=True),
            Pubkey.from_string(body["owner"]),
            bool(body.get("executable", False)),
            int(body.get("rentEpoch", 0)) % 2**64,
        )
        key = Pubkey.from_string(doc["pubkey"]) if address == "-" else address_or_keypair(address, "--account")
    except ExtraError:
        raise
    except OSError as exc:
        raise ExtraError(f"{what}: cannot read it ({exc.strerror})") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ExtraError(f"{what}: not a `solana account --output json` file ({type(exc).__name__}: {exc})") from None
    return key, account
