"""Localnet keypairs and addresses, kept in ``localnet/`` where other commands find them.

Keypairs are Solana CLI JSON files (64-byte arrays), created on first use with mode 0600
and reused afterwards, so a localnet restarted on the same checkout has the same wallets.
``addresses.json`` is rewritten at every start with the endpoints and public addresses.
These keys are for the local chain only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from solders.keypair import Keypair

from decentral_chain.paths import LOCALNET_DIR

ROLES = ("admin", "gateway", "mint-authority", "mint", "treasury", "worker-1", "worker-2", "client")


def read_keypair(path: Path) -> Keypair:
    try:
        secret = json.loads(Path(path).read_text())
        return Keypair.from_bytes(bytes(secret))
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a Solana keypair file ({exc})") from exc


def write_keypair(path: Path, keypair: Keypair) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(list(bytes(keypair)), f)
    os.chmod(path, 0o600)


def load_or_create(role: str, directory: Path = LOCALNET_DIR) -> Keypair:
    path = directory / f"{role}-keypair.json"
    if path.exists():
        os.chmod(path, 0o600)
        return read_keypair(path)
    keypair = Keypair()
    write_keypair(path, keypair)
    return keypair


@dataclass(frozen=True, slots=True)
class LocalnetKeys:
    admin: Keypair
    gateway: Keypair
    mint_authority: Keypair
    mint: Keypair
    treasury: Keypair
    workers: tuple[Keypair, ...]
    client: Keypair

    @staticmethod
    def load(directory: Path = LOCALNET_DIR) -> LocalnetKeys:
        k = {role: load_or_create(role, directory) for role in ROLES}
        return LocalnetKeys(
            k["admin"],
            k["gateway"],
            k["mint-authority"],
            k["mint"],
            k["treasury"],
            (k["worker-1"], k["worker-2"]),
            k["client"],
        )
