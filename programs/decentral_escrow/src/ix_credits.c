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
  uint64_t err = require_type(p, account, TYPE_CREDITS);
  *out = (Credits *)account->data;
  if (err == 0) return require_key(owner, &(*out)->owner, ERR_CREDITS_OWNER_MISMATCH);
  TRY(require_uninitialized(account, err)); /* neither ours nor empty: the load error */
  InitPda init = {owner, account, SEED_CREDITS, SEED_CREDITS_LEN, owner->key.x, 32, CREDITS_LEN,
                  p->program_id, err, 0};
  TRY(init_pda(p, &init));
  Credits *c = *out;
  c->discriminator = ACCOUNT_CREDITS;
  pubkey_copy(&c->owner, &owner->key);
  c->bump = init.bump;
  return 0;
}

static uint64_t process_deposit(SolParameters *p) {
  DepositAccounts a;
  DepositArgs args;
  Credits *credits;
  // 1. Accounts (config open, source: the owner's account of the config mint, the vault), arguments
  TRY(parse_deposit(p, &a, &args));
  Config *cfg = (Config *)a.config->data;
  if (args.amount == 0) return ERR_ZERO_AMOUNT;
  // 2. Credits of this owner (created on first deposit)
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
  // 1. Accounts (the signer's own Credits, destination of the config mint, the vault), arguments.
  //    Withdraw stays open while paused: funds are never trapped.
  TRY(parse_withdraw(p, &a, &args));
  Config *cfg = (Config *)a.config->data;
  Credits *credits = (Credits *)a.credits->data;
  // 2. Only the free balance
  if (args.amount == 0) return ERR_ZERO_AMOUNT;
  if (args.amount > credits->free) return ERR_INSUFFICIENT_CREDITS;

  // Effects
  const SolSignerSeed seeds[2] = {{(const uint8_t *)SEED_CONFIG, SEED_CONFIG_LEN}, {&cfg->bump, 1}};
  const SolSignerSeeds signer = {seeds, 2};
  TRY(token_transfer(a.vault, a.destination, a.config, args.amount, &signer));
  credits->free -= args.amount;
  TRY(checked_add(&cfg->total_withdrawn, args.amount));
  emit_credits_event(EVENT_CREDITS_WITHDRAWN, credits, args.amount);
  return 0;
}
