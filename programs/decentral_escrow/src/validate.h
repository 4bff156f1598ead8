/* validate.h - account constraints, one helper per check, each with its own error. */
#pragma once
#include "escrow_abi.h"

/* SPL Token account (165 bytes): the state byte. The mint and owner fields constraints
 * compare are placed by abi.TOKEN_ACCOUNT_FIELDS. */
#define TOKEN_STATE_OFFSET 108
#define TOKEN_STATE_INITIALIZED 1

#define MINT_IS_INITIALIZED_OFFSET 45

static uint64_t require_key(const SolAccount *a, const SolPubkey *expected, uint64_t err);
static uint64_t require_uninitialized(const SolAccount *a, uint64_t err);
static uint64_t require_canonical_pda(const SolSignerSeed *seeds, uint64_t n, const SolPubkey *program_id,
                                      const SolAccount *a, uint8_t *bump);
static uint64_t require_program_account(const SolAccount *a, const SolPubkey *program_id, uint64_t disc,
                                        uint64_t len);
static uint64_t require_token_account(const SolAccount *a);
static inline uint64_t require_type(const SolParameters *p, const SolAccount *a, uint8_t type);
static uint64_t require_mint(const SolAccount *a);
static uint64_t require_upgrade_authority(const SolPubkey *program_id, const SolAccount *program,
                                          const SolAccount *program_data, const SolPubkey *authority);
static uint64_t checked_add(uint64_t *dst, uint64_t v);
static uint64_t checked_sub(uint64_t *dst, uint64_t v);
