/* cpi.c - the system and SPL Token instructions this program invokes.
 *
 * The invoked program id is always our constant, never the key of an account the caller
 * passed: the generated parsers already reject a wrong token/system program account with
 * a named error, and even without that check no CPI could be redirected. */
#include "validate.h"

#define ACCOUNT_STORAGE_OVERHEAD 128

enum { SYS_CREATE_ACCOUNT = 0, SYS_ASSIGN = 1, SYS_TRANSFER = 2, SYS_ALLOCATE = 8 };
enum { TOKEN_TRANSFER = 3, TOKEN_INITIALIZE_ACCOUNT3 = 18 };

/* Rent::minimum_balance without floating point. The f64 exemption threshold is decoded as
 * mant * 2^-shift (mant < 2^53); the product with base = (128 + space) * lamports_per_byte_year
 * is split into mant's 27-bit halves so no intermediate exceeds 2^63 (base < 2^36 here: our
 * accounts are a few hundred bytes), and rounded up - never below the runtime's value.
 * (A plain 64x64->128 multiply would need the __multi3 libcall, which BPF lacks.) */
static uint64_t rent_exempt_minimum(uint64_t space, uint64_t *out) {
  uint64_t rent[3]; /* lamports_per_byte_year: u64, exemption_threshold: f64, burn: u8 */
  sol_get_rent_sysvar(rent);
  uint64_t base = (ACCOUNT_STORAGE_OVERHEAD + space) * rent[0];
  if (space > (1u << 20) || rent[0] > (1ULL << 15) || base >= (1ULL << 36)) return ERR_ARITHMETIC_OVERFLOW;
  uint64_t bits = rent[1];
  int64_t exp = (int64_t)((bits >> 52) & 0x7ff);
  if (exp == 0) { /* zero (or subnormal) threshold: nothing to hold */
    *out = 0;
    return 0;
  }
  uint64_t mant = (bits & ((1ULL << 52) - 1)) | (1ULL << 52);
  int64_t shift = 1075 - exp; /* threshold = mant / 2^shift */
  if (shift < 26 || shift > 88) return ERR_ARITHMETIC_OVERFLOW;
  uint64_t hi = base * (mant >> 26);          /* < 2^63 */
  uint64_t lo = base * (mant & ((1 << 26) - 1)); /* < 2^62 */
  uint64_t q = hi + (lo >> 26);               /* exact value * 2^(shift - 26) */
  bool inexact = (lo & ((1 << 26) - 1)) != 0;
  int64_t rest = shift - 26;
  if (rest >= 64) {
    inexact = inexact || q != 0;
    q = 0;
  } else {
    inexact = inexact || (q & ((1ULL << rest) - 1)) != 0;
    q >>= rest;
  }
  *out = q + (inexact ? 1 : 0);
  return 0;
}

/* One CPI: the callee, its accounts with their meta flags, data and the PDA signer.
 * The runtime charges per account info handed over, so only the named accounts go. */
#define CPI_WRITABLE 1
#define CPI_SIGNER 2
typedef struct {
  const SolPubkey *program;
  const SolSignerSeeds *signer; /* seeds of the one PDA that signs, or 0 */
  const uint8_t *data;
  uint64_t data_len;
  uint64_t n;
  SolAccount *accounts[3];
  uint8_t flags[3];
} Cpi;

static uint64_t invoke(const Cpi *c) {
  SolAccountMeta metas[3];
  SolAccountInfo infos[3];
  for (uint64_t i = 0; i < c->n; i++) {
    SolAccount *a = c->accounts[i];
    metas[i].pubkey = &a->key;
    metas[i].is_writable = (c->flags[i] & CPI_WRITABLE) != 0;
    metas[i].is_signer = (c->flags[i] & CPI_SIGNER) != 0;
    /* rent_epoch sits after the data in the input buffer; the runtime does not read it. */
    SolAccountInfo *info = &infos[i];
    info->key = &a->key;
    info->lamports = &a->lamports;
    info->data_len = a->data_len;
    info->data = a->data;
    info->owner = &a->owner;
    info->rent_epoch = 0;
    info->is_signer = a->is_signer;
    info->is_writable = a->is_writable;
    info->executable = a->executable;
  }
  const SolInstruction ix = {c->program, metas, c->n, c->data, c->data_len};
  return sol_invoke_signed_c(&ix, infos, (int)c->n, c->signer, c->signer ? 1 : 0);
}

/* Anchor's `init` for a PDA: CreateAccount, or - when someone pre-funded the address to
 * block CreateAccount - top up, Allocate and Assign. The caller checked the address is
 * the canonical PDA and uninitialized. */
typedef struct {
  SolAccount *payer;
  SolAccount *target;
  uint64_t space;
  const SolPubkey *owner;
  const SolSignerSeeds *signer;
} CreatePda;

/* System instruction data: u32 tag, then the fields the tag takes, little endian like sBPF.
 * Built in u32 words, so the u64 fields at byte 4 are two aligned stores each:
 *   CreateAccount: lamports, space, owner    Transfer: lamports
 *   Allocate:      space                     Assign:   owner */
static void put_u64(uint32_t *w, uint64_t v) {
  w[0] = (uint32_t)v;
  w[1] = (uint32_t)(v >> 32);
}

static uint64_t invoke_system(const CreatePda *c, uint32_t tag, uint64_t lamports) {
  uint32_t w[13];
  uint32_t *at = w + 1;
  w[0] = tag;
  if (tag == SYS_CREATE_ACCOUNT || tag == SYS_TRANSFER) {
    put_u64(at, lamports);
    at += 2;
  }
  if (tag == SYS_CREATE_ACCOUNT || tag == SYS_ALLOCATE) {
    put_u64(at, c->space);
    at += 2;
  }
  if (tag == SYS_CREATE_ACCOUNT || tag == SYS_ASSIGN) {
    mem_copy(at, c->owner->x, 32);
    at += 8;
  }
  const uint8_t *data = (const uint8_t *)w;
  uint64_t len = (uint64_t)((const uint8_t *)at - data);
  Cpi cpi = {&SYSTEM_PROGRAM_ID, c->signer, data, len, 2, {c->payer, c->target},
             {CPI_WRITABLE | CPI_SIGNER, CPI_WRITABLE | CPI_SIGNER}};
  if (tag == SYS_TRANSFER) { /* payer -> target: only the payer signs */
    cpi.signer = 0;
    cpi.flags[1] = CPI_WRITABLE;
  } else if (tag != SYS_CREATE_ACCOUNT) { /* Allocate / Assign act on the PDA alone */
    cpi.n = 1;
    cpi.accounts[0] = c->target;
  }
  return invoke(&cpi); /* the runtime writes the new data_len straight into the record */
}

static uint64_t create_pda_account(const CreatePda *c) {
  uint64_t needed;
  TRY(rent_exempt_minimum(c->space, &needed));
  uint64_t have = c->target->lamports;
  if (have == 0) return invoke_system(c, SYS_CREATE_ACCOUNT, needed);
  if (needed > have) TRY(invoke_system(c, SYS_TRANSFER, needed - have));
  TRY(invoke_system(c, SYS_ALLOCATE, 0));
  return invoke_system(c, SYS_ASSIGN, 0);
}

/* Anchor's `init` with `seeds = [prefix, key?], bump`: the canonical PDA of the seeds,
 * which must not exist yet (`exists_err`), created with `space` bytes for `owner`. */
typedef struct {
  SolAccount *payer;
  SolAccount *target;
  const char *prefix;
  uint64_t prefix_len;
  const uint8_t *key; /* second seed, or 0 for a single-seed PDA */
  uint64_t key_len;
  uint64_t space;
  const SolPubkey *owner;
  uint64_t exists_err;
  uint8_t bump; /* out: the canonical bump */
} InitPda;

static uint64_t init_pda(const SolParameters *p, InitPda *i) {
  SolSignerSeed seeds[3] = {{(const uint8_t *)i->prefix, i->prefix_len}, {i->key, i->key_len}, {0, 0}};
  uint64_t n = i->key ? 2 : 1;
  TRY(require_canonical_pda(seeds, n, p->program_id, i->target, &i->bump));
  TRY(require_uninitialized(i->target, i->exists_err));
  seeds[n].addr = &i->bump;
  seeds[n].len = 1;
  const SolSignerSeeds signer = {seeds, n + 1};
  const CreatePda c = {i->payer, i->target, i->space, i->owner, &signer};
  return create_pda_account(&c);
}

/* SPL Token Transfer (3): from -> to, signed by authority (or by `signer`'s PDA). */
static uint64_t token_transfer(SolAccount *from, SolAccount *to, SolAccount *authority,
                               uint64_t amount, const SolSignerSeeds *signer) {
  uint8_t data[9];
  data[0] = TOKEN_TRANSFER;
  mem_copy(data + 1, &amount, 8);
  const Cpi cpi = {&TOKEN_PROGRAM_ID, signer, data, sizeof(data), 3, {from, to, authority},
                   {CPI_WRITABLE, CPI_WRITABLE, CPI_SIGNER}};
  return invoke(&cpi);
}

/* SPL Token InitializeAccount3 (18): account of mint, owned by `owner`. */
static uint64_t token_initialize_account3(SolAccount *account, SolAccount *mint, const SolPubkey *owner) {
  uint8_t data[33];
  data[0] = TOKEN_INITIALIZE_ACCOUNT3;
  mem_copy(data + 1, owner->x, 32);
  const Cpi cpi = {&TOKEN_PROGRAM_ID, 0, data, sizeof(data), 2, {account, mint}, {CPI_WRITABLE, 0}};
  return invoke(&cpi);
}

/* Anchor's `close = payer`: move every lamport, zero the data, shrink to 0 bytes and give
 * the account back to the system program, so it cannot be revived as this program's. */
static uint64_t close_account(SolAccount *account, SolAccount *destination) {
  TRY(checked_add(&destination->lamports, account->lamports));
  account->lamports = 0;
  mem_zero(account->data, account->data_len);
  account->data_len = 0;
  account->owner = SYSTEM_PROGRAM_ID;
  return 0;
}

/* Sysvars come from syscalls, never from caller-supplied accounts: there is no sysvar
 * account whose address could be forged. */
static int64_t unix_now(void) {
  SolClock clock;
  sol_get_clock_sysvar(&clock);
  return clock.unix_timestamp;
}
