/* initialize(fee_bps: u16, refund_timeout: i64) - accounts: see InitializeAccounts in
 * escrow_ix.h. Creates the singleton Config and the vault token account of the mint.
 * Only the program's upgrade authority may call it, so nobody can front-run the
 * deployment with a Config of their own; it runs once (Config must not exist). */
#include "validate.h"

static uint64_t process_initialize(SolParameters *p) {
  InitializeAccounts a;
  InitializeArgs args;
  // 1. Account count, signer, writable, program ids, argument layout
  TRY(parse_initialize(p, &a, &args));
  // 2. Only the upgrade authority of this very program
  TRY(require_upgrade_authority(p->program_id, a.program, a.program_data, a.admin->key));
  // 3. Arguments
  if (args.fee_bps > MAX_FEE_BPS) return ERR_INVALID_FEE_BPS;
  if (args.refund_timeout < MIN_REFUND_TIMEOUT || args.refund_timeout > MAX_REFUND_TIMEOUT)
    return ERR_INVALID_REFUND_TIMEOUT;
  // 4. Canonical PDAs, not yet initialized
  uint8_t config_bump, vault_bump;
  const SolSignerSeed config_find[1] = {{(const uint8_t *)SEED_CONFIG, SEED_CONFIG_LEN}};
  const SolSignerSeed vault_find[1] = {{(const uint8_t *)SEED_VAULT, SEED_VAULT_LEN}};
  TRY(require_canonical_pda(config_find, 1, p->program_id, a.config, &config_bump));
  TRY(require_canonical_pda(vault_find, 1, p->program_id, a.vault, &vault_bump));
  TRY(require_uninitialized(a.config, ERR_ACCOUNT_ALREADY_INITIALIZED));
  TRY(require_uninitialized(a.vault, ERR_ACCOUNT_ALREADY_INITIALIZED));
  // 5. Mint and treasury: classic SPL Token, same mint
  TRY(require_mint(a.mint));
  TokenAccountHead *treasury;
  TRY(load_token_account(a.treasury, a.mint->key, &treasury));

  // Effects: create Config, create and initialize the vault owned by Config
  const SolSignerSeed config_seeds[2] = {{(const uint8_t *)SEED_CONFIG, SEED_CONFIG_LEN}, {&config_bump, 1}};
  const SolSignerSeeds config_signer = {config_seeds, 2};
  const SolSignerSeed vault_seeds[2] = {{(const uint8_t *)SEED_VAULT, SEED_VAULT_LEN}, {&vault_bump, 1}};
  const SolSignerSeeds vault_signer = {vault_seeds, 2};
  const CreatePda config = {a.admin, a.config, CONFIG_LEN, p->program_id, &config_signer};
  const CreatePda vault = {a.admin, a.vault, TOKEN_ACCOUNT_LEN, &TOKEN_PROGRAM_ID, &vault_signer};
  TRY(create_pda_account(&config));
  TRY(create_pda_account(&vault));
  TRY(token_initialize_account3(a.vault, a.mint, a.config->key));

  Config *cfg = (Config *)a.config->data;
  cfg->discriminator = ACCOUNT_CONFIG;
  pubkey_copy(&cfg->admin, a.admin->key);
  pubkey_copy(&cfg->gateway, a.gateway->key);
  pubkey_copy(&cfg->mint, a.mint->key);
  pubkey_copy(&cfg->vault, a.vault->key);
  pubkey_copy(&cfg->treasury, a.treasury->key);
  cfg->refund_timeout = args.refund_timeout;
  cfg->fee_bps = args.fee_bps;
  cfg->bump = config_bump;
  cfg->vault_bump = vault_bump;
  emit_config_updated(cfg);
  return 0;
}
