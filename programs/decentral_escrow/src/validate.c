/* validate.c - account constraints.
 *
 * Security note (why program accounts are not re-derived on every use): this program
 * creates Config, Credits and Job only through its init paths, each of which derives the
 * canonical PDA first (require_canonical_pda), and closing zeroes data and hands the
 * account back to the system program. So an account that is owned by this program, has
 * the exact length and the discriminator of a type, was created at that type's canonical
 * address. The seeds that bind a party are compared through the stored fields instead
 * (Credits.owner, Job.client / worker / payer), which costs no find_program_address.
 */
#include "validate.h"

/* The IDL's account constraints (count, signer, writable), from the generated flag table. */
static uint64_t bind_accounts(SolParameters *p, SolAccount **at, const uint8_t *flags, uint64_t n) {
  if (p->ka_num < n) return ERR_NOT_ENOUGH_ACCOUNTS;
  for (uint64_t i = 0; i < n; i++) at[i] = p->ka[i];
  for (uint64_t i = 0; i < n; i++)
    if ((flags[i] & ACC_SIGNER) && !p->ka[i]->is_signer) return ERR_MISSING_SIGNER;
  for (uint64_t i = 0; i < n; i++)
    if ((flags[i] & ACC_WRITABLE) && !p->ka[i]->is_writable) return ERR_ACCOUNT_NOT_WRITABLE;
  return 0;
}

static uint64_t read_args(const SolParameters *p, uint8_t *out, const ArgField *fields, uint64_t n) {
  const uint8_t *d = p->data + 8;
  uint64_t left = p->data_len - 8;
  for (uint64_t i = 0; i < n; i++) {
    const ArgField *f = &fields[i];
    if (f->flags & ARG_OPTION) {
      if (left == 0 || d[0] > 1) return ERR_INVALID_INSTRUCTION_DATA;
      out[f->tag] = d[0];
      d++;
      left--;
      if (out[f->tag] == 0) continue;
    }
    if (left < f->size) return ERR_INVALID_INSTRUCTION_DATA;
    if ((f->flags & ARG_BOOL) && d[0] > 1) return ERR_INVALID_INSTRUCTION_DATA;
    mem_copy(out + f->offset, d, f->size);
    d += f->size;
    left -= f->size;
  }
  return left == 0 ? 0 : ERR_INVALID_INSTRUCTION_DATA;
}

static uint64_t require_key(const SolAccount *a, const SolPubkey *expected, uint64_t err) {
  return pubkey_eq(&a->key, expected) ? 0 : err;
}

/* The runtime serializes a repeated account once; duplicates share the key pointer. */
static uint64_t require_distinct(const SolAccount *a, const SolAccount *b) {
  return pubkey_eq(&a->key, &b->key) ? ERR_DUPLICATE_ACCOUNT : 0;
}

/* Never created, or closed: owned by the system program and holding no data. */
static uint64_t require_uninitialized(const SolAccount *a, uint64_t err) {
  return (pubkey_eq(&a->owner, &SYSTEM_PROGRAM_ID) && a->data_len == 0) ? 0 : err;
}

static uint64_t require_canonical_pda(const SolSignerSeed *seeds, uint64_t n, const SolPubkey *program_id,
                                      const SolAccount *a, uint8_t *bump) {
  SolPubkey expected;
  if (sol_try_find_program_address(seeds, n, program_id, &expected, bump) != 0) return ERR_INVALID_PDA;
  return pubkey_eq(&a->key, &expected) ? 0 : ERR_INVALID_PDA;
}

static uint64_t load_program_account(SolAccount *a, const SolPubkey *program_id, uint64_t disc,
                                     uint64_t len, void **out) {
  if (!pubkey_eq(&a->owner, program_id)) return ERR_ACCOUNT_OWNED_BY_WRONG_PROGRAM;
  if (a->data_len != len) return ERR_INVALID_ACCOUNT_SIZE;
  if (*(const uint64_t *)a->data != disc) return ERR_ACCOUNT_DISCRIMINATOR_MISMATCH;
  *out = a->data;
  return 0;
}

static uint64_t load_config(const SolParameters *p, SolAccount *a, Config **out) {
  return load_program_account(a, p->program_id, ACCOUNT_CONFIG, CONFIG_LEN, (void **)out);
}

static uint64_t load_credits(const SolParameters *p, SolAccount *a, Credits **out) {
  return load_program_account(a, p->program_id, ACCOUNT_CREDITS, CREDITS_LEN, (void **)out);
}

static uint64_t load_job(const SolParameters *p, SolAccount *a, Job **out) {
  return load_program_account(a, p->program_id, ACCOUNT_JOB, JOB_LEN, (void **)out);
}

/* Classic SPL Token only: Token-2022 accounts (other owner, extensions) are rejected. */
static uint64_t load_token_account(SolAccount *a, const SolPubkey *mint, TokenAccountHead **out) {
  if (!pubkey_eq(&a->owner, &TOKEN_PROGRAM_ID)) return ERR_INVALID_TOKEN_ACCOUNT;
  if (a->data_len != TOKEN_ACCOUNT_LEN) return ERR_INVALID_TOKEN_ACCOUNT;
  if (a->data[TOKEN_STATE_OFFSET] != TOKEN_STATE_INITIALIZED) return ERR_INVALID_TOKEN_ACCOUNT;
  TokenAccountHead *t = (TokenAccountHead *)a->data;
  if (!pubkey_eq(&t->mint, mint)) return ERR_MINT_MISMATCH;
  *out = t;
  return 0;
}

static uint64_t require_token_owner(const TokenAccountHead *t, const SolPubkey *wallet) {
  return pubkey_eq(&t->owner, wallet) ? 0 : ERR_TOKEN_OWNER_MISMATCH;
}

static uint64_t require_mint(const SolAccount *a) {
  if (!pubkey_eq(&a->owner, &TOKEN_PROGRAM_ID)) return ERR_INVALID_MINT;
  if (a->data_len != MINT_LEN) return ERR_INVALID_MINT;
  if (a->data[MINT_IS_INITIALIZED_OFFSET] != 1) return ERR_INVALID_MINT;
  return 0;
}

static bool bytes_eq(const uint8_t *a, const uint8_t *b, uint64_t n) {
  uint8_t diff = 0;
  for (uint64_t i = 0; i < n; i++) diff |= a[i] ^ b[i];
  return diff == 0;
}

/* Anchor's `program_data.upgrade_authority_address == Some(signer)`, spelled out (account
 * data is 8-aligned in the input buffer, so the u32 tags are aligned loads).
 *   Program account:     u32 tag (2) | programdata address[32]
 *   ProgramData account: u32 tag (3) | u64 slot | u8 Some | authority[32] | ELF */
static uint64_t require_upgrade_authority(const SolPubkey *program_id, const SolAccount *program,
                                          const SolAccount *program_data, const SolPubkey *authority) {
  if (!pubkey_eq(&program->key, program_id)) return ERR_INVALID_PROGRAM_ACCOUNT;
  if (!pubkey_eq(&program->owner, &BPF_LOADER_UPGRADEABLE_ID)) return ERR_INVALID_PROGRAM_ACCOUNT;
  if (program->data_len < 36 || *(const uint32_t *)program->data != 2) return ERR_INVALID_PROGRAM_ACCOUNT;
  if (!bytes_eq(program->data + 4, program_data->key.x, 32)) return ERR_INVALID_PROGRAM_DATA;
  if (!pubkey_eq(&program_data->owner, &BPF_LOADER_UPGRADEABLE_ID)) return ERR_INVALID_PROGRAM_DATA;
  if (program_data->data_len < 45 || *(const uint32_t *)program_data->data != 3) return ERR_INVALID_PROGRAM_DATA;
  if (program_data->data[12] != 1) return ERR_NOT_UPGRADE_AUTHORITY;
  if (!bytes_eq(program_data->data + 13, authority->x, 32)) return ERR_NOT_UPGRADE_AUTHORITY;
  return 0;
}

static uint64_t checked_add(uint64_t *dst, uint64_t v) {
  return __builtin_add_overflow(*dst, v, dst) ? ERR_ARITHMETIC_OVERFLOW : 0;
}

static uint64_t checked_sub(uint64_t *dst, uint64_t v) {
  return __builtin_sub_overflow(*dst, v, dst) ? ERR_ARITHMETIC_OVERFLOW : 0;
}
