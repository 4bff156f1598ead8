/* entrypoint.c - deserialize, split the 8-byte discriminator, dispatch; a custom error is
 * also logged as Anchor logs it, so Anchor's clients turn it into a typed AnchorError. */
#include "escrow_ix.h"

static uint64_t dispatch(SolParameters *p) {
  if (p->data_len < 8) return ERR_INSTRUCTION_MISSING;
  /* Instruction data follows an 8-aligned u64 length in the input buffer: an aligned load. */
  switch (*(const uint64_t *)p->data) {
    case IX_INITIALIZE: return process_initialize(p);
    case IX_DEPOSIT: return process_deposit(p);
    case IX_WITHDRAW: return process_withdraw(p);
    case IX_LOCK_JOB: return process_lock_job(p);
    case IX_SETTLE_JOB: return process_settle_job(p);
    case IX_REFUND_JOB: return process_refund_job(p);
    case IX_UPDATE_CONFIG: return process_update_config(p);
    case IX_SET_TREASURY: return process_set_treasury(p);
    case IX_PROPOSE_ADMIN: return process_propose_admin(p);
    case IX_ACCEPT_ADMIN: return process_accept_admin(p);
    default: return ERR_UNKNOWN_INSTRUCTION;
  }
}

/* "AnchorError occurred. Error Code: <Name>. Error Number: <n>. Error Message: <msg>."
 * (anchor-lang's AnchorError::log), from the generated name / message table. */
static void log_anchor_error(uint64_t code) {
  static const char HEAD[] = "AnchorError occurred. Error Code: ";
  static const char NUMBER[] = ". Error Number: ";
  static const char MESSAGE[] = ". Error Message: ";
  _Static_assert(ERROR_FIRST + ERROR_COUNT <= 10000, "error numbers are logged with 4 digits");
  uint64_t i = code - ERROR_FIRST;
  if (i >= ERROR_COUNT) return;
  uint64_t name = i ? ERROR_TEXT_END[2 * i - 1] : 0, msg = ERROR_TEXT_END[2 * i];
  uint64_t end = ERROR_TEXT_END[2 * i + 1];
  char line[ERROR_LOG_MAX];
  uint64_t n = 0;
  mem_copy(line, HEAD, sizeof(HEAD) - 1), n += sizeof(HEAD) - 1;
  mem_copy(line + n, ERROR_TEXT + name, msg - name), n += msg - name;
  mem_copy(line + n, NUMBER, sizeof(NUMBER) - 1), n += sizeof(NUMBER) - 1;
  for (uint64_t div = 1000; div; div /= 10) line[n++] = (char)('0' + code / div % 10); /* 6000..6999 */
  mem_copy(line + n, MESSAGE, sizeof(MESSAGE) - 1), n += sizeof(MESSAGE) - 1;
  mem_copy(line + n, ERROR_TEXT + msg, end - msg), n += end - msg;
  line[n++] = '.';
  sol_log_(line, n);
}

uint64_t entrypoint(uint8_t *input) {
  SolParameters p;
  sol_deserialize(input, &p);
  uint64_t result = dispatch(&p);
  if (result) log_anchor_error(result);
  return result;
}
