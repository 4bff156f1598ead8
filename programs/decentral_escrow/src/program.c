/* program.c - the unity build: the linker takes exactly one object, so every source file
 * is compiled as one translation unit, in dependency order. */
#include "escrow_ix.h"
#include "validate.c"
#include "cpi.c"
#include "event.c"
#include "ix_admin.c"
#include "ix_initialize.c"
#include "ix_credits.c"
#include "ix_jobs.c"
#include "entrypoint.c"
