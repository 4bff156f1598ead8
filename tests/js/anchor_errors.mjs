// @coral-xyz/anchor against the localnet with our Anchor >= 0.30 IDL, unpatched: Program,
// program.methods with PDAs resolved by Anchor, the typed account fetcher, and a failing
// instruction turned into a typed AnchorError from the program's log line.
import anchorModule from "@coral-xyz/anchor"; // CommonJS: its exports are the default export

import { Connection, Keypair, PublicKey } from "@solana/web3.js";
import { readFileSync } from "node:fs";

const anchor = anchorModule;

const [url, secret, idlPath, source] = process.argv.slice(2);
const connection = new Connection(url, "confirmed");
const owner = Keypair.fromSecretKey(Uint8Array.from(JSON.parse(secret)));
const provider = new anchor.AnchorProvider(connection, new anchor.Wallet(owner), { commitment: "confirmed" });
const program = new anchor.Program(JSON.parse(readFileSync(idlPath, "utf8")), provider);

const deposit = await program.methods
  .deposit(new anchor.BN(1_000_000))
  .accounts({ owner: owner.publicKey, source: new PublicKey(source) })
  .rpc();
const [creditsPda] = PublicKey.findProgramAddressSync([Buffer.from("credits"), owner.publicKey.toBuffer()], program.programId);
const credits = await program.account.credits.fetch(creditsPda);

let error = null;
try {
  await program.methods
    .withdraw(new anchor.BN(credits.free.toString()).add(new anchor.BN(1)))
    .accounts({ owner: owner.publicKey, destination: new PublicKey(source) })
    .rpc();
} catch (e) {
  error = {
    anchorError: e instanceof anchor.AnchorError,
    code: e.error?.errorCode?.code ?? null,
    number: e.error?.errorCode?.number ?? null,
    message: e.error?.errorMessage ?? String(e),
    programErrorStack: (e.programErrorStack ?? []).map(String),
  };
}
console.log(JSON.stringify({ deposit, free: credits.free.toString(), owner: credits.owner.toBase58(), error }));
