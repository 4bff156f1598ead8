/* Admin instructions: update_config, set_treasury, propose_admin, accept_admin.
 * Each one: parse → the signer is the (pending) admin → validate values → write → event. */
#include "validate.h"

static void emit_config_updated(const Config *cfg) {
  ConfigUpdatedEvent ev;
  ev.discriminator = EVENT_CONFIG_UPDATED;
  COPY_RUN(ev, cfg, admin, paused);
  emit_event(&ev, CONFIG_UPDATED_EVENT_LEN);
}

static uint64_t load_config_as_admin(SolParameters *p, SolAccount *admin, SolAccount *config,
                                     Config **cfg) {
  TRY(load_config(p, config, cfg));
  return require_key(admin, &(*cfg)->admin, ERR_NOT_ADMIN);
}

static uint64_t process_update_config(SolParameters *p) {
  UpdateConfigAccounts a;
  UpdateConfigArgs args;
  Config *cfg;
  TRY(parse_update_config(p, &a, &args));
  TRY(load_config_as_admin(p, a.admin, a.config, &cfg));
  if (args.fee_bps.is_some && args.fee_bps.value > MAX_FEE_BPS) return ERR_INVALID_FEE_BPS;
  if (args.refund_timeout.is_some &&
      (args.refund_timeout.value < MIN_REFUND_TIMEOUT || args.refund_timeout.value > MAX_REFUND_TIMEOUT))
    return ERR_INVALID_REFUND_TIMEOUT;

  if (args.fee_bps.is_some) cfg->fee_bps = args.fee_bps.value;
  if (args.refund_timeout.is_some) cfg->refund_timeout = args.refund_timeout.value;
  if (args.gateway.is_some) pubkey_copy(&cfg->gateway, &args.gateway.value);
  if (args.paused.is_some) cfg->paused = args.paused.value;
  emit_config_updated(cfg);
  return 0;
}

static uint64_t process_set_treasury(SolParameters *p) {
  SetTreasuryAccounts a;
  Config *cfg;
  TokenAccountHead *treasury;
  TRY(parse_set_treasury(p, &a));
  TRY(load_config_as_admin(p, a.admin, a.config, &cfg));
  TRY(load_token_account(a.treasury, &cfg->mint, &treasury));
  // Fees paid into the vault would back no credits: vault != Σ free + Σ locked.
  if (pubkey_eq(&a.treasury->key, &cfg->vault)) return ERR_INVALID_TREASURY;

  pubkey_copy(&cfg->treasury, &a.treasury->key);
  emit_config_updated(cfg);
  return 0;
}

static uint64_t process_propose_admin(SolParameters *p) {
  ProposeAdminAccounts a;
  ProposeAdminArgs args;
  Config *cfg;
  TRY(parse_propose_admin(p, &a, &args));
  TRY(load_config_as_admin(p, a.admin, a.config, &cfg));
  pubkey_copy(&cfg->pending_admin, &args.new_admin); /* all zeros cancels a pending handover */
  return 0;
}

static uint64_t process_accept_admin(SolParameters *p) {
  AcceptAdminAccounts a;
  Config *cfg;
  TRY(parse_accept_admin(p, &a));
  TRY(load_config(p, a.config, &cfg));
  if (pubkey_is_zero(&cfg->pending_admin)) return ERR_NO_PENDING_ADMIN;
  TRY(require_key(a.new_admin, &cfg->pending_admin, ERR_NOT_PENDING_ADMIN));

  pubkey_copy(&cfg->admin, &cfg->pending_admin);
  mem_zero(&cfg->pending_admin, sizeof(SolPubkey));
  emit_config_updated(cfg);
  return 0;
}
