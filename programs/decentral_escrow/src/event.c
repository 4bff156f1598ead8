/* event.c - Anchor events: sol_log_data of one slice, discriminator then Borsh fields.
 * Event structs are laid out without holes (escrow_abi.h pins every offset), so the
 * first <NAME>_EVENT_LEN bytes of a struct are exactly its Borsh encoding. */
#include "escrow_abi.h"

/* Copy the run of fields first..last of an account into the same-named run of an event:
 * one mem_copy instead of field-by-field copies; the layouts are checked at compile time. */
#define COPY_RUN(ev, src, first, last)                                                           \
  do {                                                                                           \
    _Static_assert(offsetof(__typeof__(*(src)), last) - offsetof(__typeof__(*(src)), first) ==   \
                       offsetof(__typeof__(ev), last) - offsetof(__typeof__(ev), first),         \
                   "event run mirrors the account");                                             \
    mem_copy(&(ev).first, &(src)->first,                                                      \
                offsetof(__typeof__(ev), last) + sizeof((ev).last) - offsetof(__typeof__(ev), first)); \
  } while (0)

static void emit_event(const void *event, uint64_t len) {
  const SolBytes slice = {(const uint8_t *)event, len};
  sol_log_data(&slice, 1);
}
