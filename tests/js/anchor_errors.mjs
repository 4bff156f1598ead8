// @coral-xyz/anchor against the localnet with our Anchor >= 0.30 IDL, unpatched: Program,
// program.methods with PDAs resolved by Anchor, the typed account fetcher, events through
// addEventListener (logsSubscribe over PubSub) and EventParser (a fetched transaction's logs),
// and failing instructions turned into typed AnchorErrors from the program's log line (a
// failed account constraint with the account as its origin).
import anchorModule from "@coral-xyz/anchor"; // CommonJS: its exports are the default export

import { Connection, Keypair, PublicKey } from "@solana/web3.js";
import { readFileSync } from "node:fs";

const anchor = anchorModule;

const [url, secret, idlPath, source] = process.argv.slice(2);
const connection = new Connection(url, "confirmed");
const owner = Keypair.fromSecretKey(Uint8Array.from(JSON.parse(secret)));
const provider = new anchor.AnchorProvider(connection, new anchor.Wallet(owner), { commitment: "confirmed" });
const program = new anchor.Program(JSON.parse(readFileSync(idlPath, "utf8")), provider);

const heard = new Promise((resolve) => {
  const id = program.addEventListener("creditsDeposited", (event, slot, signature) => {
    program.removeEventListener(id);
    resolve({ owner: event.owner.toBase58(), amount: event.amount.toString(), free: event.free.toString(), slot, signature });
  });
});
await new Promise((r) => setTimeout(r, 300)); // the logs subscription is in place

const deposit = await program.methods
  .deposit(new anchor.BN(1_000_000))
  .accounts({ owner: owner.publicKey, source: new PublicKey(source) })
  .rpc();
const [creditsPda] = PublicKey.findProgramAddressSync([Buffer.from("credits"), owner.publicKey.toBuffer()], program.programId);
const credits = await program.account.credits.fetch(creditsPda);
const listened = await Promise.race([heard, new Promise((r) => setTimeout(() => r(null), 10_000))]);
const fetched = await connection.getTransaction(deposit, { commitment: "confirmed", maxSupportedTransactionVersion: 0 });
const parser = new anchor.EventParser(program.programId, program.coder);
const parsed = [...parser.parseLogs(fetched.meta.logMessages)].map((e) => ({
  name: e.name,
  owner: e.data.owner.toBase58(),
  amount: e.data.amount.toString(),
}));

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
// a failed account constraint: withdrawing into a token account that is not the owner's (the
// vault) is Anchor's "caused by account" form, which names the account as the error's origin
const [vault] = PublicKey.findProgramAddressSync([Buffer.from("vault")], program.programId);
let constraint = null;
try {
  await program.methods.withdraw(new anchor.BN(1)).accounts({ owner: owner.publicKey, destination: vault }).rpc();
} catch (e) {
  constraint = {
    anchorError: e instanceof anchor.AnchorError,
    code: e.error?.errorCode?.code ?? null,
    origin: e.error?.origin ?? null,
  };
}
console.log(
  JSON.stringify({ deposit, free: credits.free.toString(), owner: credits.owner.toBase58(), listened, parsed, error, constraint }),
);
process.exit(0); // the event listener's websocket would keep node alive
