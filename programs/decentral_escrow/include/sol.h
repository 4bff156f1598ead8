/* sol.h - the program's own minimal Solana SDK for sBPF v0.
 *
 * The only file that declares syscalls. Also: the input deserializer, the CPI structs
 * whose layout the runtime reads (SolAccountInfo, SolInstruction, ...), a bounds-checked
 * Borsh reader and little-endian helpers. Nothing here allocates or keeps globals: sBPF v0
 * programs cannot have writable sections.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 8-aligned so that comparisons are four u64 loads. Every pubkey the program touches
 * (input buffer keys and owners, account data, its own structs) sits at a multiple of 8. */
typedef struct {
  uint8_t x[32];
} __attribute__((aligned(8))) SolPubkey;

/* Layout read by sol_invoke_signed_c; do not reorder. */
typedef struct {
  SolPubkey *key;
  uint64_t *lamports;
  uint64_t data_len;
  uint8_t *data;
  SolPubkey *owner;
  uint64_t rent_epoch;
  uint8_t is_signer; /* bools, 0 or 1: copied from the loader's record as they are */
  uint8_t is_writable;
  uint8_t executable;
} SolAccountInfo;

typedef struct {
  const SolPubkey *pubkey;
  bool is_writable;
  bool is_signer;
} SolAccountMeta;

typedef struct {
  const SolPubkey *program_id;
  const SolAccountMeta *accounts;
  uint64_t account_len;
  const uint8_t *data;
  uint64_t data_len;
} SolInstruction;

typedef struct {
  const uint8_t *addr;
  uint64_t len;
} SolSignerSeed, SolBytes;

typedef struct {
  const SolSignerSeed *addr;
  uint64_t len;
} SolSignerSeeds;

typedef struct {
  uint64_t slot;
  int64_t epoch_start_timestamp;
  uint64_t epoch;
  uint64_t leader_schedule_epoch;
  int64_t unix_timestamp;
} SolClock;

/* ---------------------------------------------------------------- syscalls */
extern void sol_log_(const char *msg, uint64_t len);
extern void sol_log_64_(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
extern void sol_log_data(const SolBytes *slices, uint64_t count);
extern void sol_memcpy_(void *dst, const void *src, uint64_t n);
extern void sol_memset_(void *dst, int c, uint64_t n);
extern uint64_t sol_create_program_address(const SolSignerSeed *seeds, uint64_t n,
                                           const SolPubkey *program_id, SolPubkey *out);
extern uint64_t sol_try_find_program_address(const SolSignerSeed *seeds, uint64_t n,
                                             const SolPubkey *program_id, SolPubkey *out,
                                             uint8_t *bump);
extern uint64_t sol_invoke_signed_c(const SolInstruction *ix, const SolAccountInfo *infos,
                                    int n_infos, const SolSignerSeeds *seeds, int n_seeds);
extern uint64_t sol_get_clock_sysvar(void *out);
extern uint64_t sol_get_rent_sysvar(void *out);

#define sol_log(s) sol_log_((s), sizeof(s) - 1)

/* -------------------------------------------------------------- helpers */
#define TRY(expr)                  \
  do {                             \
    uint64_t _err = (expr);        \
    if (_err != 0) return _err;    \
  } while (0)

/* Out of line on purpose: inlined at ~40 call sites it cost more bytes than it saves CU. */
__attribute__((noinline)) static bool pubkey_eq(const SolPubkey *a, const SolPubkey *b) {
  const uint64_t *x = (const uint64_t *)a->x;
  const uint64_t *y = (const uint64_t *)b->x;
  return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0;
}

static inline bool pubkey_is_zero(const SolPubkey *a) {
  const uint64_t *x = (const uint64_t *)a->x;
  return (x[0] | x[1] | x[2] | x[3]) == 0;
}

/* Out of line for the same reason: a struct copy is eight instructions at every site. */
__attribute__((noinline)) static void pubkey_copy(SolPubkey *dst, const SolPubkey *src) { *dst = *src; }

/* Every copy and fill goes through these two, so the ELF carries one syscall relocation
 * for each instead of one per call site (16 bytes apiece); the extra call costs ~2 CU. */
__attribute__((noinline)) static void mem_copy(void *dst, const void *src, uint64_t n) { sol_memcpy_(dst, src, n); }
__attribute__((noinline)) static void mem_zero(void *dst, uint64_t n) { sol_memset_(dst, 0, n); }

/* ------------------------------------------------------- input deserializer */
#define SOL_MAX_ACCOUNTS 16
#define MAX_PERMITTED_DATA_INCREASE (10 * 1024)
#define NON_DUP_MARKER 0xff

/* One account as the loader serialized it into the input buffer (aligned layout). The
 * program reads and writes accounts in place, like Pinocchio: no copies, and the runtime
 * reads lamports, data_len and data straight back from here. Duplicates point at the
 * record of their first occurrence, so they alias exactly as the runtime means. */
typedef struct {
  uint8_t dup_marker; /* NON_DUP_MARKER: a unique account */
  uint8_t is_signer;
  uint8_t is_writable;
  uint8_t executable;
  uint8_t padding[4];
  SolPubkey key;
  SolPubkey owner;
  uint64_t lamports;
  uint64_t data_len; /* writing it shrinks (or grows, within the realloc room) the account */
  uint8_t data[];    /* data_len bytes, 10 KiB realloc room, pad to 8, u64 rent_epoch */
} SolAccount;
_Static_assert(offsetof(SolAccount, key) == 8 && offsetof(SolAccount, data) == 88, "loader layout");

typedef struct {
  SolAccount *ka[SOL_MAX_ACCOUNTS];
  uint64_t ka_num; /* accounts in ka (extras beyond SOL_MAX_ACCOUNTS are skipped) */
  const uint8_t *data;
  uint64_t data_len;
  const SolPubkey *program_id;
} SolParameters;

/* Walks the loader's serialization: u64 n; per account either a full record (unique) or
 * u8 index of the original + 7 bytes of padding; then u64 ix_data_len, ix_data,
 * program_id[32]. */
static void sol_deserialize(uint8_t *input, SolParameters *p) {
  uint64_t n = *(uint64_t *)input;
  input += 8;
  for (uint64_t i = 0; i < n; i++) {
    SolAccount *a = (SolAccount *)input;
    if (a->dup_marker == NON_DUP_MARKER) {
      input += sizeof(SolAccount) + a->data_len + MAX_PERMITTED_DATA_INCREASE + 8;
      input = (uint8_t *)(((uint64_t)input + 7) & ~(uint64_t)7);
    } else {
      input += 8;
      if (i < SOL_MAX_ACCOUNTS) a = p->ka[a->dup_marker]; /* always an earlier index */
    }
    if (i < SOL_MAX_ACCOUNTS) p->ka[i] = a;
  }
  p->ka_num = n < SOL_MAX_ACCOUNTS ? n : SOL_MAX_ACCOUNTS;
  p->data_len = *(uint64_t *)input;
  p->data = input + 8;
  p->program_id = (const SolPubkey *)(input + 8 + p->data_len);
}
