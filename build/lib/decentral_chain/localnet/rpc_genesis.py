"""Genesis over JSON-RPC, for a validator that deployed the program itself.

`decentral localnet --validator solana-test-validator` starts the validator with
``--upgradeable-program <id> target/deploy/decentral_escrow.so <admin>`` and then runs this:
SOL from the faucet (requestAirdrop), the 6-decimal mint, token accounts, the client's
USDC and ``initialize``. The same accounts as the LiteSVM localnet, from the same keys.
"""

from __future__ import annotations

from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import CreateAccountParams, create_account

from decentral_chain.abi import MINT_LEN, PROGRAM_ID, TOKEN_PROGRAM_ID
from decentral_chain.client import EscrowClient
from decentral_chain.localnet import spl
from decentral_chain.localnet.genesis import SOL, USDC
from decentral_chain.localnet.keys import LocalnetKeys
from decentral_chain.pda import associated_token_address

FEE_BPS = 250
REFUND_TIMEOUT = 600


async def genesis_over_rpc(
    url: str, keys: LocalnetKeys, *, program_id: Pubkey = PROGRAM_ID, client_usdc: int = 1_000 * USDC
) -> None:
    async with EscrowClient(url, program_id=program_id) as escrow:
        wallets = [keys.admin, keys.gateway, keys.mint_authority, keys.treasury, *keys.workers, keys.client]
        for kp in wallets:
            sig = await escrow.rpc.call(
                "requestAirdrop", [str(kp.pubkey()), 100 * SOL if kp in wallets[:3] else 10 * SOL]
            )
            await escrow.confirm(Signature.from_string(sig), timeout=30)
        authority, mint = keys.mint_authority, keys.mint.pubkey()
        rent = await escrow.rpc.call("getMinimumBalanceForRentExemption", [MINT_LEN])
        await escrow.send(
            [
                create_account(
                    CreateAccountParams(
                        from_pubkey=authority.pubkey(),
                        to_pubkey=mint,
                        lamports=rent,
                        space=MINT_LEN,
                        owner=TOKEN_PROGRAM_ID,
                    )
                ),
                spl.initialize_mint2(mint, 6, authority.pubkey()),
            ],
            authority,
            [keys.mint],
        )
        owners = [keys.treasury, *keys.workers, keys.client]
        await escrow.send(
            [spl.create_associated_token_account(authority.pubkey(), kp.pubkey(), mint) for kp in owners],
            authority,
        )
        client_token = associated_token_address(keys.client.pubkey(), mint)
        await escrow.send(
            [spl.mint_to(mint, client_token, authority.pubkey(), client_usdc)],
            authority,
        )
        await escrow.initialize(
            keys.admin,
            mint=mint,
            gateway=keys.gateway.pubkey(),
            treasury=associated_token_address(keys.treasury.pubkey(), mint),
            fee_bps=FEE_BPS,
            refund_timeout=REFUND_TIMEOUT,
        )
