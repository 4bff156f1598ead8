/* entrypoint.c - deserialize, split the 8-byte discriminator, dispatch. Nothing else. */
#include "escrow_ix.h"

uint64_t entrypoint(uint8_t *input) {
  SolParameters p;
  sol_deserialize(input, &p);
  if (p.data_len < 8) return ERR_INSTRUCTION_MISSING;
  /* Instruction data follows an 8-aligned u64 length in the input buffer: an aligned load. */
  switch (*(const uint64_t *)p.data) {
    case IX_INITIALIZE: return process_initialize(&p);
    case IX_DEPOSIT: return process_deposit(&p);
    case IX_WITHDRAW: return process_withdraw(&p);
    case IX_LOCK_JOB: return process_lock_job(&p);
    case IX_SETTLE_JOB: return process_settle_job(&p);
    case IX_REFUND_JOB: return process_refund_job(&p);
    case IX_UPDATE_CONFIG: return process_update_config(&p);
    case IX_SET_TREASURY: return process_set_treasury(&p);
    case IX_PROPOSE_ADMIN: return process_propose_admin(&p);
    case IX_ACCEPT_ADMIN: return process_accept_admin(&p);
    default: return ERR_UNKNOWN_INSTRUCTION;
  }
}
