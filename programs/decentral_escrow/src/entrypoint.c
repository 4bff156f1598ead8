/* entrypoint.c - deserialize, split the 8-byte discriminator, dispatch; a custom error is
 * also logged as Anchor logs it (naming the account of a failed constraint), so Anchor's
 * clients turn it into a typed AnchorError. */
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

/* line[n..] = src[0..len); the new length. */
__attribute__((noinline)) static uint64_t put(char *line, uint64_t n, const char *src, uint64_t len) {
  mem_copy(line + n, src, len);
  return n + len;
}

/* "AnchorError occurred. Error Code: <Name>. Error Number: <n>. Error Message: <msg>." or, for
 * an account constraint (``account``: its name index + 1), "AnchorError caused by account:
 * <account>. Error Code: ..." (anchor-lang's AnchorError::log), from the generated tables. */
static void log_anchor_error(uint64_t code, uint64_t account) {
  static const char OCCURRED[] = "AnchorError occurred";
  static const char CAUSED[] = "AnchorError caused by account: ";
  static const char CODE[] = ". Error Code: ";
  static const char NUMBER[] = ". Error Number: 60"; /* 6000..6099: the last two digits follow */
  static const char MESSAGE[] = ". Error Message: ";
  _Static_assert(ERROR_FIRST == 6000 && ERROR_COUNT <= 100, "error numbers are 60xx");
  uint64_t i = code - ERROR_FIRST;
  if (i >= ERROR_COUNT) return;
  uint64_t name = ERROR_TEXT_START[i], msg = name + ERROR_NAME_LEN[i], end = ERROR_TEXT_START[i + 1];
  /* account 0: no account, an empty name (ACCOUNT_NAME_END[0..1] is [0, 0)) */
  uint64_t from = ACCOUNT_NAME_END[account], to = ACCOUNT_NAME_END[account + 1];
  char line[ERROR_LOG_MAX];
  uint64_t n = account ? put(line, 0, CAUSED, sizeof(CAUSED) - 1) : put(line, 0, OCCURRED, sizeof(OCCURRED) - 1);
  n = put(line, n, ACCOUNT_NAME_TEXT + from, to - from);
  n = put(line, n, CODE, sizeof(CODE) - 1);
  n = put(line, n, ERROR_TEXT + name, msg - name);
  n = put(line, n, NUMBER, sizeof(NUMBER) - 1);
  line[n++] = (char)('0' + i / 10);
  line[n++] = (char)('0' + i % 10);
  n = put(line, n, MESSAGE, sizeof(MESSAGE) - 1);
  n = put(line, n, ERROR_TEXT + msg, end - msg);
  line[n++] = '.';
  sol_log_(line, n);
}

uint64_t entrypoint(uint8_t *input) {
  SolParameters p;
  sol_deserialize(input, &p);
  uint64_t result = dispatch(&p);
  if (result) {
    uint64_t account = result >> ACCOUNT_ERROR_SHIFT; /* set by ON_ACCOUNT: a constraint's account */
    result &= (1ULL << ACCOUNT_ERROR_SHIFT) - 1;
    log_anchor_error(result, account);
  }
  return result;
}
