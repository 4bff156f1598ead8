/* Gateway instructions: lock_job, settle_job, refund_job.
 * A Job binds its terms at lock: client, worker, amount, payer, the fee rate, the settlement
 * deadline and a lifecycle nonce (the client's lock counter, so (client, nonce) never
 * repeats for any Job address). Settle and refund take every one of those from the Job,
 * never from the caller, echo the nonce in their event, and close the Job so it ends once. */
#include "validate.h"

static uint64_t process_lock_job(SolParameters *p) {
  LockJobAccounts a;
  LockJobArgs args;
  // 1. Accounts (only the config gateway, not while paused; the client's Credits), arguments
  TRY(parse_lock_job(p, &a, &args));
  Config *cfg = (Config *)a.config->data;
  Credits *credits = (Credits *)a.credits->data;
  // 2. Arguments
  if (args.amount == 0) return ERR_ZERO_AMOUNT;
  static const uint8_t zero_id[16] = {0};
  if (bytes_eq(args.job_id, zero_id, 16)) return ERR_INVALID_JOB_ID;
  if (pubkey_is_zero(&args.worker) || pubkey_eq(&args.worker, &a.config->key) || pubkey_eq(&args.worker, &cfg->vault))
    return ERR_INVALID_WORKER;
  // 3. Client credits
  if (args.amount > credits->free) return ERR_INSUFFICIENT_CREDITS;
  if (credits->open_jobs == UINT32_MAX) return ERR_ARITHMETIC_OVERFLOW;
  TRY(checked_add(&credits->locks, 1));
  // 4. Job: created below at the canonical PDA of the id, which must not be open
  InitPda init = {a.gateway, a.job, SEED_JOB, SEED_JOB_LEN, args.job_id, 16, JOB_LEN, p->program_id,
                  ERR_JOB_ALREADY_EXISTS, 0};

  // Effects
  TRY(init_pda(p, &init));
  Job *job = (Job *)a.job->data;
  job->discriminator = ACCOUNT_JOB;
  mem_copy(job->job_id, args.job_id, 16);
  pubkey_copy(&job->client, &credits->owner);
  pubkey_copy(&job->worker, &args.worker);
  pubkey_copy(&job->payer, &a.gateway->key);
  job->amount = args.amount;
  job->created_at = unix_now();
  if (__builtin_add_overflow(job->created_at, cfg->refund_timeout, &job->expires_at)) return ERR_ARITHMETIC_OVERFLOW;
  job->nonce = credits->locks;
  job->fee_bps = cfg->fee_bps;
  job->bump = init.bump;
  credits->free -= args.amount;
  TRY(checked_add(&credits->locked, args.amount));
  credits->open_jobs += 1;

  JobLockedEvent ev;
  ev.discriminator = EVENT_JOB_LOCKED;
  COPY_RUN(ev, job, job_id, fee_bps);
  emit_event(&ev, JOB_LOCKED_EVENT_LEN);
  return 0;
}

/* The job's locked amount leaves `locked`; `back` of it returns to `free`. */
static uint64_t release_job(Credits *credits, const Job *job, uint64_t back) {
  TRY(checked_sub(&credits->locked, job->amount));
  TRY(checked_add(&credits->free, back));
  if (credits->open_jobs == 0) return ERR_ARITHMETIC_OVERFLOW;
  credits->open_jobs -= 1;
  return 0;
}

static uint64_t process_settle_job(SolParameters *p) {
  SettleJobAccounts a;
  SettleJobArgs args;
  // 1. Accounts, arguments: the gateway settles, co-signed by the worker bound at lock; the
  //    Job, its client's Credits and rent payer; config vault and treasury; a token account
  //    of that worker
  TRY(parse_settle_job(p, &a, &args));
  Config *cfg = (Config *)a.config->data;
  Job *job = (Job *)a.job->data;
  Credits *credits = (Credits *)a.credits->data;
  // 2. This lifecycle, as the co-signing worker agreed to (the worker's signature covers it)
  if (args.nonce != job->nonce) return ERR_LIFECYCLE_MISMATCH;
  // 3. Before the deadline only: from expires_at on a Job can only be refunded
  if (unix_now() >= job->expires_at) return ERR_JOB_EXPIRED;
  // 4. Amounts: fee = floor(cost * fee_bps / 10,000) at the rate fixed at lock, without overflow
  if (args.cost > job->amount) return ERR_COST_EXCEEDS_LOCKED;
  uint64_t fee = (args.cost / BPS_DENOMINATOR) * job->fee_bps + (args.cost % BPS_DENOMINATOR) * job->fee_bps / BPS_DENOMINATOR;
  uint64_t pay = args.cost - fee;

  // Effects
  const SolSignerSeed seeds[2] = {{(const uint8_t *)SEED_CONFIG, SEED_CONFIG_LEN}, {&cfg->bump, 1}};
  const SolSignerSeeds signer = {seeds, 2};
  if (pay > 0) TRY(token_transfer(a.vault, a.worker_token, a.config, pay, &signer));
  if (fee > 0) TRY(token_transfer(a.vault, a.treasury, a.config, fee, &signer));
  TRY(release_job(credits, job, job->amount - args.cost));
  TRY(checked_add(&credits->total_spent, args.cost));
  TRY(checked_add(&cfg->total_paid, pay));
  TRY(checked_add(&cfg->total_fees, fee));
  TRY(checked_add(&cfg->jobs_settled, 1));

  JobSettledEvent ev;
  ev.discriminator = EVENT_JOB_SETTLED;
  COPY_RUN(ev, job, job_id, worker);
  mem_copy(ev.result_hash, args.result_hash, 32);
  ev.cost = args.cost;
  ev.fee = fee;
  ev.refunded = job->amount - args.cost;
  ev.prompt_tokens = args.prompt_tokens;
  ev.completion_tokens = args.completion_tokens;
  ev.nonce = job->nonce;
  TRY(close_account(a.job, a.payer));
  emit_event(&ev, JOB_SETTLED_EVENT_LEN);
  return 0;
}

static uint64_t process_refund_job(SolParameters *p) {
  RefundJobAccounts a;
  // 1. Accounts: Config, the Job, its client's Credits and rent payer
  TRY(parse_refund_job(p, &a));
  Config *cfg = (Config *)a.config->data;
  Job *job = (Job *)a.job->data;
  Credits *credits = (Credits *)a.credits->data;
  // 2. The gateway at any time; the client once the job expired
  if (!pubkey_eq(&a.authority->key, &cfg->gateway)) {
    if (!pubkey_eq(&a.authority->key, &job->client)) return ERR_NOT_JOB_PARTY;
    if (unix_now() < job->expires_at) return ERR_JOB_NOT_EXPIRED;
  }

  // Effects
  TRY(release_job(credits, job, job->amount));
  TRY(checked_add(&cfg->jobs_refunded, 1));
  JobRefundedEvent ev;
  ev.discriminator = EVENT_JOB_REFUNDED;
  COPY_RUN(ev, job, job_id, worker);
  pubkey_copy(&ev.authority, &a.authority->key);
  ev.amount = job->amount;
  ev.nonce = job->nonce;
  TRY(close_account(a.job, a.payer));
  emit_event(&ev, JOB_REFUNDED_EVENT_LEN);
  return 0;
}
