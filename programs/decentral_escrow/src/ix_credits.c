/* Client instructions: deposit and withdraw.
 * The vault's authority is the Config PDA; it signs only withdraw (and settle). */
#include "validate.h"

static void emit_credits_event(uint64_t disc, const Credits *c, uint64_t amount) {
  CreditsDepositedEvent ev; /* CreditsWithdrawn has the same fields */
  _Static_assert(CREDITS_DEPOSITED_EVENT_LEN == CREDITS_WITHDRAWN_EVENT_LEN, "same layout");
  ev.discriminator = disc;
  COPY_RUN(ev, c, owner, locked);
  ev.amount = amount;
  emit_event(&ev, CREDITS_DEPOSITED_EVENT_LEN);
}

/* Anchor's `init_if_needed` with seeds ["credits", owner]: a new account is created at
 * the canonical PDA; an existing one must be ours and belong to the owner. */
static uint64_t credits_for_deposit(SolParameters *p, SolAccount *owner, SolAccount *account,
                                    Credits **out) {
  uint64_t err = load_credits(p, account, out);
  if (err == 0) return require_key(owner, &(*out)->owner, ERR_CREDITS_OWNER_MISMATCH);
  TRY(require_uninitialized(account, err)); /* neither ours nor empty: the load error */
  InitPda init = {owner, account, SEED_CREDITS, SEED_CREDITS_LEN, owner->key.x, 32, CREDITS_LEN,
                  p->program_id, err, 0};
  TRY(init_pda(p, &init));
  Credits *c = (Credits *)account->data;
  c->discriminator = ACCOUNT_CREDITS;
  pubkey_copy(&c->owner, &owner->key);
  c->bump = init.bump;
  *out = c;
  return 0;
}

static uint64_t process_deposit(SolParameters *p) {
  DepositAccounts a;
  DepositArgs args;
  Config *cfg;
  Credits *credits;
  TokenAccountHead *source;
  // 1. Accounts, signer, writable, program ids, arguments
  TRY(parse_deposit(p, &a, &args));
  // 2. Config and state
  TRY(load_config(p, a.config, &cfg));
  if (cfg->paused) return ERR_PROGRAM_PAUSED;
  if (args.amount == 0) return ERR_ZERO_AMOUNT;
  // 3. Token accounts: the config vault; the owner's own account of the config mint
  TRY(require_key(a.vault, &cfg->vault, ERR_VAULT_MISMATCH));
  TRY(load_token_account(a.source, &cfg->mint, &source));
  TRY(require_token_owner(source, &a.owner->key));
  // 4. Credits of this owner (created on first deposit)
  TRY(credits_for_deposit(p, a.owner, a.credits, &credits));

  // Effects
  TRY(token_transfer(a.source, a.vault, a.owner, args.amount, 0));
  TRY(checked_add(&credits->free, args.amount));
  TRY(checked_add(&credits->total_deposited, args.amount));
  TRY(checked_add(&cfg->total_deposited, args.amount));
  emit_credits_event(EVENT_CREDITS_DEPOSITED, credits, args.amount);
  return 0;
}

static uint64_t process_withdraw(SolParameters *p) {
  WithdrawAccounts a;
  WithdrawArgs args;
  Config *cfg;
  Credits *credits;
  TokenAccountHead *destination;
  // 1. Accounts, signer, writable, program ids, arguments
  TRY(parse_withdraw(p, &a, &args));
  // 2. Config (withdraw stays open while paused: funds are never trapped)
  TRY(load_config(p, a.config, &cfg));
  if (args.amount == 0) return ERR_ZERO_AMOUNT;
  // 3. The signer's own Credits, and only its free balance
  TRY(load_credits(p, a.credits, &credits));
  TRY(require_key(a.owner, &credits->owner, ERR_CREDITS_OWNER_MISMATCH));
  if (args.amount > credits->free) return ERR_INSUFFICIENT_CREDITS;
  // 4. Token accounts
  TRY(require_key(a.vault, &cfg->vault, ERR_VAULT_MISMATCH));
  TRY(load_token_account(a.destination, &cfg->mint, &destination));
  TRY(require_token_owner(destination, &a.owner->key));

  // Effects
  const SolSignerSeed seeds[2] = {{(const uint8_t *)SEED_CONFIG, SEED_CONFIG_LEN}, {&cfg->bump, 1}};
  const SolSignerSeeds signer = {seeds, 2};
  TRY(token_transfer(a.vault, a.destination, a.config, args.amount, &signer));
  credits->free -= args.amount;
  TRY(checked_add(&cfg->total_withdrawn, args.amount));
  emit_credits_event(EVENT_CREDITS_WITHDRAWN, credits, args.amount);
  return 0;
}
