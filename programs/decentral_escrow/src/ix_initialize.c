/* initialize(fee_bps: u16, refund_timeout: i64) - accounts: see InitializeAccounts in
 * escrow_ix.h. Creates the singleton Config and the vault token account of the mint.
 * Only the program's upgrade authority may call it, so nobody can front-run the
 * deployment with a Config of their own; it runs once (Config must not exist). */
#include "validate.h"

static uint64_t process_initialize(SolParameters *p) {
  InitializeAccounts a;
  InitializeArgs args;
  // 1. Accounts (mint: classic SPL Token; treasury: a token account of it), arguments
  TRY(parse_initialize(p, &a, &args));
  // 2. Only the upgrade authority of this very program
  TRY(require_upgrade_authority(p->program_id, a.program, a.program_data, &a.admin->key));
  // 3. Arguments
  if (args.fee_bps > MAX_FEE_BPS) return ERR_INVALID_FEE_BPS;
  if (args.refund_timeout < MIN_REFUND_TIMEOUT || args.refund_timeout > MAX_REFUND_TIMEOUT)
    return ERR_INVALID_REFUND_TIMEOUT;

  // Effects: Config and the vault at their canonical PDAs (neither may exist yet); the
  // vault is a token account of the mint owned by Config.
  InitPda config = {a.admin, a.config, SEED_CONFIG, SEED_CONFIG_LEN, 0, 0, CONFIG_LEN, p->program_id,
                    ERR_ACCOUNT_ALREADY_INITIALIZED, 0};
  InitPda vault = {a.admin, a.vault, SEED_VAULT, SEED_VAULT_LEN, 0, 0, TOKEN_ACCOUNT_LEN, &TOKEN_PROGRAM_ID,
                   ERR_ACCOUNT_ALREADY_INITIALIZED, 0};
  TRY(init_pda(p, &config));
  TRY(init_pda(p, &vault));
  TRY(token_initialize_account3(a.vault, a.mint, &a.config->key));

  Config *cfg = (Config *)a.config->data;
  cfg->discriminator = ACCOUNT_CONFIG;
  pubkey_copy(&cfg->admin, &a.admin->key);
  pubkey_copy(&cfg->gateway, &a.gateway->key);
  pubkey_copy(&cfg->mint, &a.mint->key);
  pubkey_copy(&cfg->vault, &a.vault->key);
  pubkey_copy(&cfg->treasury, &a.treasury->key);
  cfg->refund_timeout = args.refund_timeout;
  cfg->fee_bps = args.fee_bps;
  cfg->bump = config.bump;
  cfg->vault_bump = vault.bump;
  emit_config_updated(cfg);
  return 0;
}
