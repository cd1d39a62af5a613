/*
 * exchange.c - the hand-over of a request whose write is durable back to
 * the loop that sends replies. device.c (from the store's writer thread)
 * calls exchange_done; the responder's main.c, which owns the exchanges
 * and their completion thread, says at start-up what that does. So the
 * pipeline stages depend on this small file, not on main.c, and main.c
 * on them: no cycle. See ARCHITECTURE.md, "Process model and group
 * commit".
 */
#include "config.h"

#include <stddef.h>

#include "extern.h"

static exchange_done_fn done_fn;

/* See extern.h. */
void
exchange_set_done(exchange_done_fn fn)
{
	done_fn = fn;
}

/* See extern.h. */
void
exchange_done(struct exchange *x, exchange_release_fn release, void *arg)
{
	done_fn(x, release, arg);
}
