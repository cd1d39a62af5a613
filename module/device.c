/*
 * device.c - what the check-in and command endpoints share: who is calling
 * (identity.c) and what it sent (validate.c), then the hand-over to the
 * group-commit writer and, once the write is durable, to the thread that
 * sends the reply. The decision itself is the caller's operation
 * (checkin.c, connect.c).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "extern.h"
#include "picomdm/identity.h"
#include "picomdm/message.h"
#include "picomdm/metrics.h"
#include "picomdm/store.h"
#include "picomdm/util.h"

struct device_op *
device_begin(size_t size, const struct server *srv, const struct request *req,
    struct response *resp, struct exchange *x, device_parse_fn parse)
{
	struct device_op *d;
	const char       *reason = NULL;
	int               rc;

	if ((d = calloc(1, size)) == NULL) {
		response_store_result(resp, STORE_ENOMEM, NULL);
		return NULL;
	}
	d->srv = srv;
	d->req = req;
	d->resp = resp;
	d->x = x;
	rc = identity_verify(srv->ca, req->client_cert, req->client_verify,
	    req->mdm_signature, req->body, req->body_len, d->hash, &reason);
	if (rc == 400 || rc == 403)
		metrics_identity_refusal(reason);
	if (rc == 0)
		rc = parse((const char *)req->body, req->body_len, &d->msg,
		    &reason);
	if (rc != 0) {
		response_set(resp, rc, reason);
		free(d);
		return NULL;
	}
	strlcpy(resp->id, d->msg->id, sizeof(resp->id));
	return d;
}

/* The operation is d itself: d is its first member. */
int
device_submit(struct device_op *d, store_op_fn run, store_done_fn done)
{
	int rc;

	if ((rc = store_submit(d->srv->store, run, d, done, d)) == 0)
		return PENDING;
	response_store_result(d->resp, rc, NULL);
	msg_free(d->msg);
	free(d);
	return HANDLED;
}

/* The operation and its message, freed by a worker (exchange_done). */
static void
device_release(void *arg)
{
	struct device_op *d = arg;

	msg_free(d->msg);
	free(d);
}

void
device_finish(struct device_op *d, int rc, const char *reason)
{
	struct exchange *x = d->x;

	if (rc == 403)
		metrics_identity_refusal(reason); /* identity_authorize */
	response_store_result(d->resp, rc, reason);
	exchange_done(x, device_release, d);
}
