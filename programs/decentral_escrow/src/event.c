/* event.c - Anchor events: sol_log_data of one slice, discriminator then Borsh fields.
 * Event structs are laid out without holes (escrow_abi.h pins every offset), so the
 * first <NAME>_EVENT_LEN bytes of a struct are exactly its Borsh encoding. */
#include "escrow_abi.h"

static void emit_event(const void *event, uint64_t len) {
  const SolBytes slice = {(const uint8_t *)event, len};
  sol_log_data(&slice, 1);
}
