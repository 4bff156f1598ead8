// @solana/web3.js against the localnet, default code paths, unpatched:
// getLatestBlockhash, sendTransaction of a signed transfer, confirmTransaction (which
// subscribes over the PubSub WebSocket at RPC port + 1), getTransaction, getAccountInfo,
// and the jsonParsed reads of SPL Token accounts: getParsedTokenAccountsByOwner,
// getParsedAccountInfo of a mint; getParsedTransaction and getParsedBlock (jsonParsed
// transactions as Agave's transaction-status parsers shape them).
import { Connection, Keypair, PublicKey, SystemProgram, Transaction } from "@solana/web3.js";

const [url, secret, tokenOwner, mint] = process.argv.slice(2);
const connection = new Connection(url, "confirmed");
const payer = Keypair.fromSecretKey(Uint8Array.from(JSON.parse(secret)));
const receiver = Keypair.generate();

const { blockhash, lastValidBlockHeight } = await connection.getLatestBlockhash();
const tx = new Transaction({ feePayer: payer.publicKey, blockhash, lastValidBlockHeight }).add(
  SystemProgram.transfer({ fromPubkey: payer.publicKey, toPubkey: receiver.publicKey, lamports: 1_234_567 }),
);
const signature = await connection.sendTransaction(tx, [payer]);
const confirmation = await connection.confirmTransaction({ signature, blockhash, lastValidBlockHeight }, "confirmed");
const fetched = await connection.getTransaction(signature, { maxSupportedTransactionVersion: 0, commitment: "confirmed" });
const parsedTx = await connection.getParsedTransaction(signature, { maxSupportedTransactionVersion: 0, commitment: "confirmed" });
const parsedBlock = await connection.getParsedBlock(fetched.slot, { maxSupportedTransactionVersion: 0, commitment: "confirmed" });
const inBlock = parsedBlock.transactions.find((t) => t.transaction.signatures[0] === signature);
const airdrop = await connection.requestAirdrop(receiver.publicKey, 500_000_000);
const latest = await connection.getLatestBlockhash();
const airdropConfirmation = await connection.confirmTransaction({ signature: airdrop, ...latest }, "confirmed");
const account = await connection.getAccountInfo(receiver.publicKey);
const TOKEN_PROGRAM = new PublicKey("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA");
const parsedTokens = await connection.getParsedTokenAccountsByOwner(new PublicKey(tokenOwner), { programId: TOKEN_PROGRAM });
const parsedMint = await connection.getParsedAccountInfo(new PublicKey(mint));
console.log(JSON.stringify({
  signature,
  confirmationErr: confirmation.value.err,
  airdropErr: airdropConfirmation.value.err,
  slot: fetched.slot,
  fee: fetched.meta.fee,
  txErr: fetched.meta.err,
  lamports: account.lamports,
  owner: account.owner.toBase58(),
  version: await connection.getVersion(),
  tokenAccounts: parsedTokens.value.map((a) => ({ pubkey: a.pubkey.toBase58(), parsed: a.account.data.parsed, program: a.account.data.program })),
  mint: parsedMint.value.data.parsed,
  parsedTransfer: parsedTx.transaction.message.instructions[0],
  parsedKeys: parsedTx.transaction.message.accountKeys.map((k) => ({ pubkey: k.pubkey.toBase58(), signer: k.signer, writable: k.writable })),
  blockTransfer: inBlock.transaction.message.instructions[0],
}));
process.exit(0);
