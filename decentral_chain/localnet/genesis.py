"""A ready chain: escrow deployed (upgradeable), a 6-decimal USDC-like mint, wallets, Config.

Used by the test suite, the demo, the benchmarks and the localnet server alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey

from decentral_chain import pda
from decentral_chain.abi import PROGRAM_ID
from decentral_chain.accounts import Config, Credits
from decentral_chain.instructions import build_deposit, build_initialize
from decentral_chain.localnet.keys import LocalnetKeys
from decentral_chain.localnet.svm import create_mint, create_token_account, deploy_upgradeable, mint_to, send

SOL = 1_000_000_000
USDC = 1_000_000  # base units per USDC (6 decimals); 1 credit = 1 base unit


@dataclass
class Wallet:
    keypair: Keypair
    token: Pubkey  # associated token account of the mint

    @property
    def pubkey(self) -> Pubkey:
        return self.keypair.pubkey()


@dataclass
class Genesis:
    svm: LiteSVM
    program_id: Pubkey
    admin: Keypair  # upgrade authority and config admin
    gateway: Keypair
    mint: Pubkey
    mint_authority: Keypair
    treasury: Wallet
    workers: list[Wallet] = field(default_factory=list)
    clients: list[Wallet] = field(default_factory=list)

    @property
    def config_address(self) -> Pubkey:
        return pda.config_address(self.program_id)

    @property
    def vault(self) -> Pubkey:
        return pda.vault_address(self.program_id)

    def config(self) -> Config:
        acc = self.svm.get_account(self.config_address)
        assert acc is not None
        return Config.from_bytes(bytes(acc.data))

    def credits(self, owner: Pubkey) -> Credits | None:
        acc = self.svm.get_account(pda.credits_address(owner, self.program_id))
        return Credits.from_bytes(bytes(acc.data)) if acc is not None and len(acc.data) else None

    def new_wallet(self, usdc: int = 0, sol: int = 10 * SOL, keypair: Keypair | None = None) -> Wallet:
        kp = keypair or Keypair()
        self.svm.airdrop(kp.pubkey(), sol)
        token = create_token_account(self.svm, kp, self.mint, kp.pubkey())
        if usdc:
            mint_to(self.svm, self.mint, token, usdc, self.mint_authority)
        return Wallet(kp, token)

    def addresses(self) -> list[Pubkey]:
        """Every account genesis created (for the localnet's account index)."""
        wallets = [self.treasury, *self.workers, *self.clients]
        return [
            self.program_id,
            pda.program_data_address(self.program_id),
            self.mint,
            self.config_address,
            self.vault,
            self.admin.pubkey(),
            self.gateway.pubkey(),
            self.mint_authority.pubkey(),
            *(w.pubkey for w in wallets),
            *(w.token for w in wallets),
        ]

    def deposit(self, client: Wallet, amount: int) -> None:
        send(
            self.svm,
            [build_deposit(owner=client.pubkey, source=client.token, amount=amount, program_id=self.program_id)],
            client.keypair,
        )


def build_genesis(
    elf: bytes,
    *,
    keys: LocalnetKeys | None = None,
    program_id: Pubkey = PROGRAM_ID,
    fee_bps: int = 250,
    refund_timeout: int = 600,
    workers: int = 2,
    clients: int = 1,
    client_usdc: int = 1_000 * USDC,
    initialize: bool = True,
) -> Genesis:
    """A chain with the escrow deployed and initialized; ``keys`` fixes every wallet (localnet)."""
    svm = LiteSVM()
    admin, gateway, mint_authority = (
        (keys.admin, keys.gateway, keys.mint_authority) if keys else (Keypair(), Keypair(), Keypair())
    )
    for kp in (admin, gateway, mint_authority):
        svm.airdrop(kp.pubkey(), 100 * SOL)
    deploy_upgradeable(svm, program_id, elf, admin.pubkey())
    mint = create_mint(svm, mint_authority, mint_authority.pubkey(), decimals=6, mint=keys.mint if keys else None)
    g = Genesis(svm, program_id, admin, gateway, mint, mint_authority, treasury=Wallet(Keypair(), Pubkey.default()))
    g.treasury = g.new_wallet(keypair=keys.treasury if keys else None)
    worker_keys = list(keys.workers) if keys else [None] * workers
    client_keys = [keys.client] if keys else [None] * clients
    g.workers = [g.new_wallet(keypair=k) for k in worker_keys]
    g.clients = [g.new_wallet(usdc=client_usdc, keypair=k) for k in client_keys]
    if initialize:
        send(
            svm,
            [
                build_initialize(
                    admin=admin.pubkey(),
                    mint=mint,
                    gateway=gateway.pubkey(),
                    treasury=g.treasury.token,
                    fee_bps=fee_bps,
                    refund_timeout=refund_timeout,
                    program_id=program_id,
                )
            ],
            admin,
        )
    return g
