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

static uint64_t invoke(const SolPubkey *program, const SolAccountMeta *metas, uint64_t n_metas,
                       const uint8_t *data, uint64_t len, const SolAccountInfo *infos, int n_infos,
                       const SolSignerSeeds *signer) {
  const SolInstruction ix = {program, metas, n_metas, data, len};
  return sol_invoke_signed_c(&ix, infos, n_infos, signer, signer ? 1 : 0);
}

/* One system instruction: u32 tag, then its fields little endian. */
typedef struct {
  uint32_t tag;
  uint64_t lamports; /* CreateAccount, Transfer */
  uint64_t space;    /* CreateAccount, Allocate */
  const SolPubkey *owner; /* CreateAccount, Assign */
} SystemIx;

/* `from` funds `to` (CreateAccount, Transfer); with from == 0 the instruction acts on
 * `to` alone (Allocate, Assign). `signer` signs for the PDA `to`. */
static uint64_t invoke_system(SolAccountInfo *from, SolAccountInfo *to, const SystemIx *s,
                              const SolSignerSeeds *signer) {
  uint8_t data[52];
  uint64_t len = 4;
  store_le(data, s->tag, 4);
  if (s->tag == SYS_CREATE_ACCOUNT || s->tag == SYS_TRANSFER) {
    store_le(data + len, s->lamports, 8);
    len += 8;
  }
  if (s->tag == SYS_CREATE_ACCOUNT || s->tag == SYS_ALLOCATE) {
    store_le(data + len, s->space, 8);
    len += 8;
  }
  if (s->tag == SYS_CREATE_ACCOUNT || s->tag == SYS_ASSIGN) {
    sol_memcpy_(data + len, s->owner->x, 32);
    len += 32;
  }
  if (from == 0) {
    const SolAccountMeta metas[1] = {{to->key, true, true}};
    return invoke(&SYSTEM_PROGRAM_ID, metas, 1, data, len, to, 1, signer);
  }
  const SolAccountMeta metas[2] = {{from->key, true, true}, {to->key, true, s->tag == SYS_CREATE_ACCOUNT}};
  const SolAccountInfo infos[2] = {*from, *to};
  return invoke(&SYSTEM_PROGRAM_ID, metas, 2, data, len, infos, 2, signer);
}

/* Anchor's `init` for a PDA: CreateAccount, or - when someone pre-funded the address to
 * block CreateAccount - top up, Allocate and Assign. The caller checked the address is
 * the canonical PDA and uninitialized. */
static uint64_t create_pda_account(SolAccountInfo *payer, SolAccountInfo *target, uint64_t space,
                                   const SolPubkey *owner, const SolSignerSeeds *signer) {
  uint64_t needed;
  TRY(rent_exempt_minimum(space, &needed));
  uint64_t have = *target->lamports;
  if (have == 0) {
    const SystemIx create = {SYS_CREATE_ACCOUNT, needed, space, owner};
    TRY(invoke_system(payer, target, &create, signer));
  } else {
    if (needed > have) {
      const SystemIx top_up = {SYS_TRANSFER, needed - have, 0, 0};
      TRY(invoke_system(payer, target, &top_up, 0));
    }
    const SystemIx allocate = {SYS_ALLOCATE, 0, space, 0};
    const SystemIx assign = {SYS_ASSIGN, 0, 0, owner};
    TRY(invoke_system(0, target, &allocate, signer));
    TRY(invoke_system(0, target, &assign, signer));
  }
  target->data_len = *account_len_slot(target); /* the runtime updated the serialized length */
  return 0;
}

static uint64_t token_transfer(SolAccountInfo *from, SolAccountInfo *to, SolAccountInfo *authority,
                               uint64_t amount, const SolSignerSeeds *signer) {
  uint8_t data[9];
  data[0] = TOKEN_TRANSFER;
  store_le(data + 1, amount, 8);
  const SolAccountMeta metas[3] = {{from->key, true, false}, {to->key, true, false}, {authority->key, false, true}};
  const SolAccountInfo infos[3] = {*from, *to, *authority};
  return invoke(&TOKEN_PROGRAM_ID, metas, 3, data, sizeof(data), infos, 3, signer);
}

static uint64_t token_initialize_account3(SolAccountInfo *account, SolAccountInfo *mint, const SolPubkey *owner) {
  uint8_t data[33];
  data[0] = TOKEN_INITIALIZE_ACCOUNT3;
  sol_memcpy_(data + 1, owner->x, 32);
  const SolAccountMeta metas[2] = {{account->key, true, false}, {mint->key, false, false}};
  const SolAccountInfo infos[2] = {*account, *mint};
  return invoke(&TOKEN_PROGRAM_ID, metas, 2, data, sizeof(data), infos, 2, 0);
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
