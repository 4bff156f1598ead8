/* Admin instructions: update_config, set_treasury, propose_admin, accept_admin.
 * Each one: parse → the signer is the (pending) admin → validate values → write → event. */
#include "validate.h"

static void emit_config_updated(const Config *cfg) {
  ConfigUpdatedEvent ev;
  ev.discriminator = EVENT_CONFIG_UPDATED;
  COPY_RUN(ev, cfg, admin, paused);
  emit_event(&ev, CONFIG_UPDATED_EVENT_LEN);
}

static uint64_t process_update_config(SolParameters *p) {
  UpdateConfigAccounts a;
  UpdateConfigArgs args;
  TRY(parse_update_config(p, &a, &args)); /* the signer is the admin */
  Config *cfg = (Config *)a.config->data;
  if (args.fee_bps.is_some && args.fee_bps.value > MAX_FEE_BPS) return ERR_INVALID_FEE_BPS;
  if (args.refund_timeout.is_some &&
      (args.refund_timeout.value < MIN_REFUND_TIMEOUT || args.refund_timeout.value > MAX_REFUND_TIMEOUT))
    return ERR_INVALID_REFUND_TIMEOUT;
  /* a gateway that can never sign would leave every open job to expire */
  if (args.gateway.is_some && (pubkey_is_zero(&args.gateway.value) || pubkey_eq(&args.gateway.value, &a.config->key) ||
                               pubkey_eq(&args.gateway.value, &cfg->vault)))
    return ERR_INVALID_GATEWAY;

  if (args.fee_bps.is_some) cfg->fee_bps = args.fee_bps.value;
  if (args.refund_timeout.is_some) cfg->refund_timeout = args.refund_timeout.value;
  if (args.gateway.is_some) pubkey_copy(&cfg->gateway, &args.gateway.value);
  if (args.paused.is_some) cfg->paused = args.paused.value;
  emit_config_updated(cfg);
  return 0;
}

static uint64_t process_set_treasury(SolParameters *p) {
  SetTreasuryAccounts a;
  // The admin signs; the treasury is a token account of the config mint, not the vault
  // (fees paid into the vault would back no credits: vault != Σ free + Σ locked) and not
  // owned by the Config PDA (fees the program could move again).
  TRY(parse_set_treasury(p, &a));
  Config *cfg = (Config *)a.config->data;
  pubkey_copy(&cfg->treasury, &a.treasury->key);
  emit_config_updated(cfg);
  return 0;
}

static uint64_t process_propose_admin(SolParameters *p) {
  ProposeAdminAccounts a;
  ProposeAdminArgs args;
  TRY(parse_propose_admin(p, &a, &args)); /* the signer is the admin */
  Config *cfg = (Config *)a.config->data;
  pubkey_copy(&cfg->pending_admin, &args.new_admin); /* all zeros cancels a pending handover */
  return 0;
}

static uint64_t process_accept_admin(SolParameters *p) {
  AcceptAdminAccounts a;
  TRY(parse_accept_admin(p, &a));
  Config *cfg = (Config *)a.config->data;
  if (pubkey_is_zero(&cfg->pending_admin)) return ERR_NO_PENDING_ADMIN;
  TRY(require_key(a.new_admin, &cfg->pending_admin, ERR_NOT_PENDING_ADMIN));

  pubkey_copy(&cfg->admin, &cfg->pending_admin);
  mem_zero(&cfg->pending_admin, sizeof(SolPubkey));
  emit_config_updated(cfg);
  return 0;
}
