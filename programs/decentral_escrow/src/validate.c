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

/* The IDL's account constraints (count, signer, writable), from the generated flag table;
 * ``culprit`` gets the index of the account a failed check names. */
static uint64_t bind_accounts(SolParameters *p, SolAccount **at, const uint8_t *flags, uint64_t n,
                              uint64_t *culprit) {
  if (p->ka_num < n) return ERR_NOT_ENOUGH_ACCOUNTS;
  for (uint64_t i = 0; i < n; i++) {
    at[i] = p->ka[i];
    if ((flags[i] & ACC_SIGNER) && !at[i]->is_signer) return *culprit = i, ERR_MISSING_SIGNER;
  }
  for (uint64_t i = 0; i < n; i++)
    if ((flags[i] & ACC_WRITABLE) && !at[i]->is_writable) return *culprit = i, ERR_ACCOUNT_NOT_WRITABLE;
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

/* CHECK_TYPE: what the account must be before any constraint reads its data. Inlined: at
 * the one call site with a constant type the switch folds away, and the table loop keeps it
 * without a call per row. */
static inline __attribute__((always_inline)) uint64_t require_type(const SolParameters *p, const SolAccount *a, uint8_t type) {
  switch (type) {
    case TYPE_CONFIG: return require_program_account(a, p->program_id, ACCOUNT_CONFIG, CONFIG_LEN);
    case TYPE_CREDITS: return require_program_account(a, p->program_id, ACCOUNT_CREDITS, CREDITS_LEN);
    case TYPE_JOB: return require_program_account(a, p->program_id, ACCOUNT_JOB, JOB_LEN);
    case TYPE_TOKEN_ACCOUNT: return require_token_account(a);
    default: return require_mint(a);
  }
}

static const uint8_t *operand(SolAccount *const *at, uint8_t acc, uint8_t off) {
  if (acc == SRC_TOKEN_PROGRAM) return TOKEN_PROGRAM_ID.x;
  if (acc == SRC_SYSTEM_PROGRAM) return SYSTEM_PROGRAM_ID.x;
  return off == OFF_KEY ? at[acc]->key.x : at[acc]->data + off;
}

/* The generated Check table, in order; the first failing row's error is returned and
 * ``culprit`` is its (first) account. */
static uint64_t check_accounts(const SolParameters *p, SolAccount *const *at, const Check *c, uint64_t n,
                               uint64_t *culprit) {
  for (; n > 0; n--, c++) {
    *culprit = c->a;
    if (c->op == CHECK_TYPE) {
      TRY(require_type(p, at[c->a], c->b));
      continue;
    }
    const uint8_t *x = operand(at, c->a, c->a_off);
    bool ok;
    if (c->op == CHECK_FALSE) {
      ok = *x == 0;
    } else {
      /* Pubkey operands are 8-aligned: data starts 8-aligned and codegen places fields so. */
      ok = pubkey_eq((const SolPubkey *)x, (const SolPubkey *)operand(at, c->b, c->b_off)) == (c->op == CHECK_EQ);
    }
    if (!ok) return c->err;
  }
  return 0;
}

static uint64_t parse(SolParameters *p, SolAccount **at, void *args, const IxSpec *ix) {
  uint64_t culprit = 0, err = bind_accounts(p, at, ix->flags, ix->n_accounts, &culprit);
  if (!err) err = check_accounts(p, at, ix->checks, ix->n_checks, &culprit);
  /* a failed constraint names its account (Anchor's `AnchorError caused by account`) */
  if (err) return err == ERR_NOT_ENOUGH_ACCOUNTS ? err : ON_ACCOUNT(err, ix->flags[culprit]);
  return read_args(p, (uint8_t *)args, ix->args, ix->n_args);
}

static uint64_t require_key(const SolAccount *a, const SolPubkey *expected, uint64_t err) {
  return pubkey_eq(&a->key, expected) ? 0 : err;
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

static uint64_t require_program_account(const SolAccount *a, const SolPubkey *program_id, uint64_t disc,
                                        uint64_t len) {
  if (!pubkey_eq(&a->owner, program_id)) return ERR_ACCOUNT_OWNED_BY_WRONG_PROGRAM;
  if (a->data_len != len) return ERR_INVALID_ACCOUNT_SIZE;
  if (*(const uint64_t *)a->data != disc) return ERR_ACCOUNT_DISCRIMINATOR_MISMATCH;
  return 0;
}

/* Classic SPL Token only: Token-2022 accounts (other owner, extensions) are rejected. */
static uint64_t require_token_account(const SolAccount *a) {
  if (!pubkey_eq(&a->owner, &TOKEN_PROGRAM_ID)) return ERR_INVALID_TOKEN_ACCOUNT;
  if (a->data_len != TOKEN_ACCOUNT_LEN) return ERR_INVALID_TOKEN_ACCOUNT;
  if (a->data[TOKEN_STATE_OFFSET] != TOKEN_STATE_INITIALIZED) return ERR_INVALID_TOKEN_ACCOUNT;
  return 0;
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
