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

/* The runtime charges per account info handed to a CPI, so each call passes only the
 * accounts its instruction names (copies: the runtime writes back through the pointers). */
static uint64_t invoke(const SolInstruction *ix, const SolAccountInfo *infos, const SolSignerSeeds *signer) {
  return sol_invoke_signed_c(ix, infos, (int)ix->account_len, signer, signer ? 1 : 0);
}

/* One system instruction: u32 tag, then its fields little endian. `from` (when set) funds
 * `to`; `signer` signs for the PDA `to`. */
typedef struct {
  uint32_t tag;
  const SolAccountInfo *from;
  SolAccountInfo *to;
  uint64_t lamports;      /* CreateAccount, Transfer */
  uint64_t space;         /* CreateAccount, Allocate */
  const SolPubkey *owner; /* CreateAccount, Assign */
  const SolSignerSeeds *signer;
} SystemIx;

static uint64_t invoke_system(const SystemIx *s) {
  uint8_t data[52] = {(uint8_t)s->tag, 0, 0, 0}; /* u32 tag < 256 */
  uint64_t len = 4;
  if (s->tag == SYS_CREATE_ACCOUNT || s->tag == SYS_TRANSFER) {
    sol_memcpy_(data + len, &s->lamports, 8); /* sBPF is little endian, like the wire */
    len += 8;
  }
  if (s->tag == SYS_CREATE_ACCOUNT || s->tag == SYS_ALLOCATE) {
    sol_memcpy_(data + len, &s->space, 8);
    len += 8;
  }
  if (s->tag == SYS_CREATE_ACCOUNT || s->tag == SYS_ASSIGN) {
    sol_memcpy_(data + len, s->owner->x, 32);
    len += 32;
  }
  const SolAccountMeta metas[2] = {{s->from ? s->from->key : s->to->key, true, true},
                                   {s->to->key, true, s->tag != SYS_TRANSFER}};
  const SolAccountInfo infos[2] = {s->from ? *s->from : *s->to, *s->to};
  const SolInstruction ix = {&SYSTEM_PROGRAM_ID, s->from ? metas : metas + 1, s->from ? 2 : 1, data, len};
  TRY(invoke(&ix, s->from ? infos : infos + 1, s->signer));
  s->to->data_len = *account_len_slot(s->to); /* the runtime updated the buffer, not our info */
  return 0;
}

/* Anchor's `init` for a PDA: CreateAccount, or - when someone pre-funded the address to
 * block CreateAccount - top up, Allocate and Assign. The caller checked the address is
 * the canonical PDA and uninitialized. */
typedef struct {
  const SolAccountInfo *payer;
  SolAccountInfo *target;
  uint64_t space;
  const SolPubkey *owner;
  const SolSignerSeeds *signer;
} CreatePda;

static uint64_t create_pda_account(const CreatePda *c) {
  uint64_t needed;
  TRY(rent_exempt_minimum(c->space, &needed));
  uint64_t have = *c->target->lamports;
  if (have == 0) {
    const SystemIx create = {SYS_CREATE_ACCOUNT, c->payer, c->target, needed, c->space, c->owner, c->signer};
    TRY(invoke_system(&create));
  } else {
    if (needed > have) {
      const SystemIx top_up = {SYS_TRANSFER, c->payer, c->target, needed - have, 0, 0, 0};
      TRY(invoke_system(&top_up));
    }
    const SystemIx allocate = {SYS_ALLOCATE, 0, c->target, 0, c->space, 0, c->signer};
    const SystemIx assign = {SYS_ASSIGN, 0, c->target, 0, 0, c->owner, c->signer};
    TRY(invoke_system(&allocate));
    TRY(invoke_system(&assign));
  }
  return 0;
}

typedef struct {
  const SolAccountInfo *from, *to, *authority;
  uint64_t amount;
  const SolSignerSeeds *signer; /* the Config PDA's seeds when it is the authority */
} TokenTransfer;

static uint64_t token_transfer(const TokenTransfer *t) {
  uint8_t data[9];
  data[0] = TOKEN_TRANSFER;
  sol_memcpy_(data + 1, &t->amount, 8); /* little endian on both sides */
  const SolAccountMeta metas[3] = {{t->from->key, true, false}, {t->to->key, true, false},
                                   {t->authority->key, false, true}};
  const SolAccountInfo infos[3] = {*t->from, *t->to, *t->authority};
  const SolInstruction ix = {&TOKEN_PROGRAM_ID, metas, 3, data, sizeof(data)};
  return invoke(&ix, infos, t->signer);
}

static uint64_t token_initialize_account3(const SolAccountInfo *account,
                                          const SolAccountInfo *mint, const SolPubkey *owner) {
  uint8_t data[33];
  data[0] = TOKEN_INITIALIZE_ACCOUNT3;
  sol_memcpy_(data + 1, owner->x, 32);
  const SolAccountMeta metas[2] = {{account->key, true, false}, {mint->key, false, false}};
  const SolAccountInfo infos[2] = {*account, *mint};
  const SolInstruction ix = {&TOKEN_PROGRAM_ID, metas, 2, data, sizeof(data)};
  return invoke(&ix, infos, 0);
}

/* Anchor's `close = payer`: move every lamport, zero the data, shrink to 0 bytes and give
 * the account back to the system program, so it cannot be revived as this program's. */
static uint64_t close_account(SolAccountInfo *account, SolAccountInfo *destination) {
  TRY(checked_add(destination->lamports, *account->lamports));
  *account->lamports = 0;
  sol_memset_(account->data, 0, account->data_len);
  *account_len_slot(account) = 0;
  account->data_len = 0;
  *account->owner = SYSTEM_PROGRAM_ID;
  return 0;
}

/* Sysvars come from syscalls, never from caller-supplied accounts: there is no sysvar
 * account whose address could be forged. */
static int64_t unix_now(void) {
  SolClock clock;
  sol_get_clock_sysvar(&clock);
  return clock.unix_timestamp;
}
